"""Compile-time properties of HogQL (no ClickHouse): user text never reaches the SQL, every table
read carries the team filter, and errors name the line and column."""

from __future__ import annotations

import re

import pytest

from app.errors import QueryError
from app.hogql.parse import MAX_LENGTH
from app.hogql.query import compile_query
from app.query_engine import ir
from app.query_engine.catalog import COLUMNS
from app.query_engine.printer import print_select
from tests.hogql.test_hostile import CONTAINED
from tests.hogql.test_sql_insights import CASES

TEXTS = [text for text, _ in CASES] + CONTAINED + ["SELECT * FROM events", "SELECT p.* FROM persons p"]
TEAM = 424242
CATALOG = {name for columns in COLUMNS.values() for name in columns} | {"index", "key", "session_id", "duration"}


def compile_sql(text: str) -> tuple[str, dict]:
    select, _, _ = compile_query(text, team_id=TEAM, timezone="Europe/Paris", property_types={})
    return print_select(select)


@pytest.mark.parametrize("text", TEXTS, ids=[f"t{i}" for i in range(len(TEXTS))])
def test_values_are_parameters_and_tables_are_filtered(text):
    sql, params = compile_sql(text)
    assert "'" not in sql and '"' not in sql  # every string is a {pN:String} parameter
    # Identifiers are generated or from the catalog: none of the user's aliases appear.
    for alias in re.findall(r"\bAS\s+([A-Za-z_]\w*)", text):
        if not (re.fullmatch(r"[ct]\d+", alias) or alias in CATALOG):  # names we generate or read anyway
            assert f"`{alias}`" not in sql
    reads = len(re.findall(r"FROM `(events|person|person_distinct_id2|groups)`", sql))
    filters = len(re.findall(r"`team_id` = \{(p\d+):Int64\}", sql))
    assert reads == filters
    assert all(params[name] == TEAM for name in re.findall(r"`team_id` = \{(p\d+):Int64\}", sql))


def test_default_and_max_limits():
    assert compile_sql("SELECT event FROM events")[0].endswith("LIMIT 101")
    assert compile_sql("SELECT event FROM events LIMIT 10")[0].endswith("LIMIT 11")
    assert compile_sql("SELECT event FROM events LIMIT 900000")[0].endswith("LIMIT 50001")


@pytest.mark.parametrize("text,where", [
    ("SELECT\n  event,\n  nope(1)\nFROM events", "line 3, column 3"),
    ("SELECT event FROM events WHERE (1", "line 1, column"),
    ("SELECT foo FROM events", "line 1, column 8"),
    ("SELECT event FROM events\nWHERE properties.x = 1 AND team_id = 2", "line 2, column 28"),
])
def test_errors_name_line_and_column(text, where):
    with pytest.raises(QueryError) as exc:
        compile_sql(text)
    assert where in exc.value.detail and exc.value.attr == "query.query"


def test_length_and_depth_caps():
    with pytest.raises(QueryError, match="longer than"):
        compile_sql("SELECT " + "1" * MAX_LENGTH)
    with pytest.raises(QueryError, match="nested too deeply"):
        compile_sql("SELECT " + "(" * 65 + "1" + ")" * 65)
    with pytest.raises(QueryError, match="too large or too deeply nested"):
        compile_sql("SELECT " + " + ".join(["1"] * 2000))


def test_function_errors_name_the_function_and_arity():
    with pytest.raises(QueryError, match="Function 'currentDatabase' is not allowed"):
        compile_sql("SELECT currentDatabase()")
    with pytest.raises(QueryError, match=r"Function toDate\(\) takes 1 argument, got 2"):
        compile_sql("SELECT toDate(1, 2)")


def test_printer_renders_union_and_subquery():
    one = ir.Select(columns=(ir.Alias(ir.Param(1, "Int64"), "c0"),))
    sql, params = print_select(ir.Select(columns=(ir.Column("c0"),),
                                         from_=ir.Subquery(ir.UnionSelect((one, one))), offset=2, limit=3))
    assert sql == ("SELECT `c0`\nFROM (\nSELECT {p0:Int64} AS `c0`\nUNION ALL\nSELECT {p0:Int64} AS `c0`\n)"
                   "\nLIMIT 3\nOFFSET 2")
    assert params == {"p0": 1}


_TOKENS = ["SELECT", "FROM", "events", "persons", "WHERE", "GROUP BY", "ORDER BY", "LIMIT", "(", ")", ",", "1", "'a'",
           "event", "properties.$x", "count()", "sum(", "AS", "x", "e", "JOIN", "ON", "=", "AND", "OR", "NOT", "IN",
           "UNION ALL", "WITH", "[", "]", "*", "+", "-", "?", ":", "CASE", "WHEN", "THEN", "END", "IS", "NULL", "::",
           "INTERVAL", "DAY", "system.tables", "numbers(1)", "{x}", "->", ".", "1.5e3", "`a`", '"b"', "LIKE",
           "BETWEEN", "HAVING", "DISTINCT", "OFFSET", "quantile(0.5)(", "e.event", "person.properties.a", "\\"]


def test_token_soup_is_rejected_or_compiled_never_crashes():
    import random

    rng = random.Random(7)
    compiled = 0
    for _ in range(1500):
        text = "SELECT " * rng.randint(0, 1) + " ".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 25)))
        try:
            select, _, _ = compile_query(text, team_id=TEAM, timezone="UTC", property_types={}, values={"x": 1})
        except QueryError:
            continue
        sql, _ = print_select(select)
        compiled += 1
        assert "'" not in sql and "system" not in sql
    assert compiled > 0  # the soup does produce valid queries, so the check above is exercised

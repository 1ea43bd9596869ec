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
from app.schemas.query.base import PersonsOnEventsMode
from tests.hogql.test_hostile import CONTAINED, RUNS
from tests.hogql.test_sql_insights import CASES

TEXTS = [text for text, _ in CASES] + CONTAINED + RUNS + ["SELECT * FROM events", "SELECT p.* FROM persons p"]
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
    reads = len(re.findall(r"FROM `(events|person|person_distinct_id2|person_distinct_id_overrides|groups)`", sql))
    filters = len(re.findall(r"`team_id` = \{(p\d+):Int64\}", sql))
    assert reads == filters
    assert all(params[name] == TEAM for name in re.findall(r"`team_id` = \{(p\d+):Int64\}", sql))


_READS = r"FROM `(events|person|person_distinct_id2|person_distinct_id_overrides|groups)`"


@pytest.mark.parametrize("mode", [m for m in PersonsOnEventsMode])
def test_every_read_is_filtered_in_every_poe_mode(mode):
    for text in TEXTS:
        select, _, _ = compile_query(text, team_id=TEAM, timezone="UTC", property_types={}, poe_mode=mode)
        sql, params = print_select(select)
        filters = re.findall(r"`team_id` = \{(p\d+):Int64\}", sql)
        assert len(re.findall(_READS, sql)) == len(filters), text
        assert all(params[name] == TEAM for name in filters)


def test_default_and_max_limits():
    assert compile_sql("SELECT event FROM events")[0].endswith("LIMIT 101")
    # A LIMIT of the user's runs as written (PostHog paginates only queries without one), capped at 50 000.
    assert compile_sql("SELECT event FROM events LIMIT 10")[0].endswith("LIMIT 10")
    assert compile_sql("SELECT event FROM events LIMIT 900000")[0].endswith("LIMIT 50000")


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
    with pytest.raises(QueryError, match="the limit is 100000"):
        compile_sql("SELECT " + "1" * MAX_LENGTH)
    with pytest.raises(QueryError, match="nested too deeply"):
        compile_sql("SELECT " + "(" * 65 + "1" + ")" * 65)
    with pytest.raises(QueryError, match="too large or too deeply nested"):
        compile_sql("SELECT " + " + ".join(["1"] * 2000))


def test_function_errors_name_the_function_and_arity():
    with pytest.raises(QueryError, match=r"Unsupported function call 'currentDatabase\(\.\.\.\)'"):
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


def compile_with(text: str, **kwargs) -> tuple[str, dict]:
    select, _, _ = compile_query(text, team_id=7, timezone="UTC", property_types={}, **kwargs)
    return print_select(select)


class TestGoldenSQL:
    def test_lambda_arguments_are_generated_names(self):
        assert compile_with("SELECT arrayMap(x -> x * 2, [1, 2])") == (
            "SELECT arrayMap(((`lambda_1`) -> (`lambda_1` * {p0:UInt8})), [{p1:UInt8}, {p0:UInt8}]) AS `c0`\nLIMIT 101",
            {"p0": 2, "p1": 1})

    def test_named_window_with_a_frame(self):
        assert compile_with("SELECT sum(1) OVER w FROM events WINDOW w AS (PARTITION BY event ORDER BY timestamp "
                            "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)") == (
            "SELECT sum({p1:UInt8}) OVER (PARTITION BY `t1`.`event` ORDER BY toTimeZone(`t1`.`timestamp`, {p0:String}) "
            "ASC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS `c0`\nFROM `events` AS `t1`\n"
            "WHERE (`t1`.`team_id` = {p2:Int64})\nLIMIT 101", {"p0": "UTC", "p1": 1, "p2": 7})

    def test_lead_gets_the_whole_partition_as_its_frame(self):
        sql, _ = compile_with("SELECT lead(event) OVER (ORDER BY timestamp) FROM events")
        assert "leadInFrame(`t1`.`event`) OVER (ORDER BY toTimeZone(`t1`.`timestamp`, {p0:String}) ASC ROWS BETWEEN " \
               "UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)" in sql

    def test_right_join_filters_both_sides_before_joining(self):
        sql, params = compile_with("SELECT e.event, p.id FROM events e RIGHT JOIN persons p ON p.id = e.distinct_id",
                                   poe_mode=PersonsOnEventsMode.person_id_no_override_properties_on_events)
        assert sql == (
            "SELECT `t1`.`event` AS `c0`, `t2`.`id` AS `c1`\nFROM (\nSELECT `uuid`, `event`, `distinct_id`, "
            "`elements_chain`, `person_id`, `$session_id`, `$window_id`, `$group_0`, `$group_1`, `$group_2`, "
            "`$group_3`, `$group_4`, `timestamp`, `created_at`, `properties`, `person_properties`, `person_created_at`\n"
            "FROM `events`\nWHERE (`team_id` = {p0:Int64})\n) AS `t1`\nRIGHT JOIN (\nSELECT `id`, "
            "argMax(`properties`, `version`) AS `properties`, argMax(`created_at`, `version`) AS `created_at`, "
            "argMax(`is_identified`, `version`) AS `is_identified`\nFROM `person`\nWHERE (`team_id` = {p0:Int64})\n"
            "GROUP BY `id`\nHAVING (argMax(`is_deleted`, `version`) = 0)\n) AS `t2` ON (`t2`.`id` = `t1`.`distinct_id`)"
            "\nLIMIT 101")
        assert params == {"p0": 7}

    def test_cross_join_has_no_on(self):
        sql, _ = compile_with("SELECT 1 FROM events, persons p")
        assert "\nCROSS JOIN (\n" in sql and " ON " not in sql

    def test_intersect_distinct_with_a_variable(self):
        assert compile_with("SELECT event FROM events INTERSECT DISTINCT SELECT {variables.ev}",
                            variables={"id1": {"variableId": "id1", "code_name": "ev", "value": "x"}}) == (
            "SELECT `c0`\nFROM (\nSELECT `t1`.`event` AS `c0`\nFROM `events` AS `t1`\n"
            "WHERE (`t1`.`team_id` = {p0:Int64})\nLIMIT 100\nINTERSECT DISTINCT\nSELECT {p1:String} AS `c0`\nLIMIT 100\n)"
            "\nLIMIT 50000",
            {"p0": 7, "p1": "x"})

    def test_using_becomes_on(self):
        sql, _ = compile_with("SELECT e.event FROM events e JOIN person_distinct_ids USING (distinct_id)")
        assert ") AS `t2` ON (`t1`.`distinct_id` = `t2`.`distinct_id`)" in sql

    @pytest.mark.parametrize("mode,joins", [
        ("disabled", ["person_distinct_id2"]),
        ("person_id_no_override_properties_on_events", []),
        ("person_id_override_properties_on_events", ["person_distinct_id_overrides"]),
        ("person_id_override_properties_joined", ["person_distinct_id_overrides"]),
    ])
    def test_person_id_follows_the_poe_mode(self, mode, joins):
        sql, _ = compile_with("SELECT person_id FROM events", poe_mode=PersonsOnEventsMode(mode))
        assert re.findall(r"FROM `(person\w*)`", sql) == joins

    @pytest.mark.parametrize("mode,joins", [
        ("disabled", ["person_distinct_id2", "person"]),
        ("person_id_no_override_properties_on_events", []),
        ("person_id_override_properties_on_events", []),
        ("person_id_override_properties_joined", ["person_distinct_id_overrides", "person"]),
    ])
    def test_person_properties_follow_the_poe_mode(self, mode, joins):
        sql, _ = compile_with("SELECT person.properties.email FROM events", poe_mode=PersonsOnEventsMode(mode))
        assert re.findall(r"FROM `(person\w*)`", sql) == joins

    def test_no_person_join_when_no_person_field_is_read(self):
        sql, _ = compile_with("SELECT event FROM events")
        assert sql.startswith("SELECT `t1`.`event` AS `c0`\nFROM `events` AS `t1`\n")


class TestCompileErrors:
    @pytest.mark.parametrize("text,message", [
        ("SELECT x -> x", "Unsupported syntax"),
        ("SELECT has(x -> x, 1)", "only allowed as the first argument"),
        ("SELECT arrayMap((x, y) -> x, [1])", "one argument per array: 1, got 2"),
        ("SELECT arrayMap([1])", "needs a lambda first"),
        ("SELECT arrayMap((x, x) -> x, [1], [2])", "distinct names"),
        ("SELECT arraySort(x -> x, [1], [2])", "one argument per array"),
        ("SELECT arrayMap(x -> nope(x), [1])", "Unsupported function call 'nope(...)'"),
        ("SELECT arrayMap(x -> y, [1])", "Unable to resolve field: y"),
        ("SELECT row_number() FROM events", "row_number() is a window function; it needs OVER"),
        ("SELECT lag(event, 1, '', 2) OVER () FROM events", "lag() takes 1 to 3 arguments, got 4"),
        ("SELECT rank(1) OVER () FROM events", "rank() takes 0 arguments, got 1"),
        ("SELECT sum(1) OVER w FROM events", "Unknown window 'w'"),
        ("SELECT sum(1) OVER (ROWS BETWEEN 99999999999 PRECEDING AND CURRENT ROW) FROM events", "frame offset"),
        ("SELECT 1 FROM events CROSS JOIN persons ON 1 = 1", "CROSS JOIN takes no ON"),
        ("SELECT 1 FROM events e FULL JOIN persons p", "needs an ON condition or USING"),
        ("SELECT 1 FROM events e JOIN persons p USING (id)", "USING (id) needs a field of that name on both sides"),
        ("SELECT 1 INTERSECT SELECT 1, 2", "same number of columns (1 and 2)"),
        ("SELECT 1 EXCEPT SELECT 1 SETTINGS readonly = 0", "SETTINGS is not allowed"),
    ])
    def test_message(self, text, message):
        with pytest.raises(QueryError) as exc:
            compile_with(text)
        assert message in exc.value.detail and exc.value.attr == "query.query"

    def test_unknown_variable_suggests_close_names(self):
        with pytest.raises(QueryError) as exc:
            compile_with("SELECT {variables.evnt}", variables={"a": {"code_name": "event_name", "value": 1},
                                                                 "b": {"code_name": "evnt_x", "value": 2}})
        assert "Variable 'evnt' is used in the query but missing" in exc.value.detail
        assert "Did you mean evnt_x" in exc.value.detail and exc.value.attr == "query.variables"

    @pytest.mark.parametrize("variables,attr", [
        ({"a": {"value": 1}}, "query.variables.a"), ({"a": "x"}, "query.variables.a"),
        ({"a": {"code_name": "x y", "value": 1}}, "query.variables.a"),
        ({"a": {"code_name": "x", "value": 1}, "b": {"code_name": "x", "value": 2}}, "query.variables.b"),
        ({"a": {"code_name": "x", "value": {"nested": 1}}}, "query.query"),
    ])
    def test_malformed_variables(self, variables, attr):
        with pytest.raises(QueryError) as exc:
            compile_with("SELECT {variables.x}", variables=variables)
        assert exc.value.attr == attr

    def test_length_limit_is_configurable(self):
        with pytest.raises(QueryError, match="the limit is 2000") as exc:
            compile_with("SELECT " + "1" * 2000, max_length=2000)
        assert exc.value.attr == "query.query"
        compile_with("SELECT '" + "a" * 1900 + "'", max_length=2000)

"""Injection suite: hostile text in every user-controlled string lands in parameters, never in the
SQL text, and the compiled queries still run."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timezone

import pytest

from app.errors import QueryError
from app.query_engine import ir
from app.query_engine.printer import Printer
from app.query_engine.scope import Scope
from app.query_engine.trends.runner import TrendsRunner
from app.schemas.query import parse_query
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events

HOSTILE = [
    "x' OR 1=1 --", 'x" OR "1"="1', "a\\'b\\", "{p0:String}", "{{x}}", "/* c */", "-- c\n", "a`b", "ü∂漢🙂",
    "a\x00b", "'; DROP TABLE events; --", "\\N", "$$_posthog_breakdown_other_$$", "a\nb\tc\r", "${x}",
]
NOW = datetime(2020, 1, 12, 12, tzinfo=timezone.utc)
PLACEHOLDER = re.compile(r"\{(p\d+):")
PLACEHOLDER_FULL = re.compile(
    r"\{p\d+:(?:String|Int64|Float64|Date|Array\(String\)|Array\(Date\)|Array\(Int64\)|DateTime64\(6, 'UTC'\))\}")


def queries(h: str) -> list[dict]:
    """A query per string field: event names, keys, values, breakdowns, custom names, dates."""
    ops = ["exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "gt", "lt", "is_date_before",
           "in", "not_in"]
    props = [{"type": t, "key": h, "operator": op, "value": [h] if op in ("in", "not_in") else h}
             for t in ("event", "person") for op in ops]
    props.append({"type": "group", "key": h, "value": h, "group_type_index": 2})
    props += [{"type": "event", "key": h, "operator": "semver_eq", "value": h},
              {"type": "person", "key": h, "operator": "semver_caret", "value": "1.2.3"}]
    props += [{"type": "element", "key": k, "value": h, "operator": "exact"} for k in ("href", "text", "tag_name")]
    return [
        trends(events(h, custom_name=h, name=h, properties=props), dateRange={"date_from": "-7d"}, properties=props),
        trends(events(h, math="sum", math_property=h), events(h, math="p90", math_property=h,
                                                             math_property_type="person_properties")),
        trends(events(h), breakdownFilter={"breakdown": h, "breakdown_normalize_url": True}),
        trends(events(h), breakdownFilter={"breakdowns": [{"property": h, "type": "person"},
                                                          {"property": h, "type": "group", "group_type_index": 1}]}),
        trends(events(h, math="dau"), breakdownFilter={"breakdown": h, "breakdown_type": "group",
                                                       "breakdown_group_type_index": 3},
               trendsFilter={"display": "ActionsTable"}, dateRange={"date_from": h, "date_to": h}),
        trends(events(h, math="first_time_for_user"), breakdownFilter={"breakdown": h}),
        trends(events(h, math="weekly_active"), compareFilter={"compare": True, "compare_to": h},
               breakdownFilter={"breakdown": h}),
    ]


def _strings(params: dict) -> set[str]:
    out = set()
    for value in params.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                out.add(item)
    return out


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_strings_only_in_params(hostile, ch_executor):
    for query in queries(hostile):
        compiled = TrendsRunner(parse_query(copy.deepcopy(query)), Scope(7, "UTC", NOW)).compile()
        assert compiled
        for c in compiled:
            # Placeholders are the only braces the printer writes; every one is a known parameter.
            assert set(PLACEHOLDER.findall(c.sql)) == set(c.params)
            text = PLACEHOLDER_FULL.sub("", c.sql)
            assert hostile not in text and "{" not in text
            assert "'" not in text  # no string literal at all
            assert any(hostile in s for s in _strings(c.params))
            await ch_executor.execute(c.sql, c.params)


@pytest.mark.parametrize("key", ["distinct_id; DROP", "properties", "`event`", "$group_9", "x"])
def test_hostile_metadata_keys_are_rejected(key):
    q = trends(events("e"), properties=[{"type": "event_metadata", "key": key, "value": "x"}])
    with pytest.raises(QueryError) as exc:
        TrendsRunner(parse_query(q), Scope(7, "UTC", NOW)).compile()
    assert exc.value.attr == "query.properties[0].key"


@pytest.mark.parametrize("value", ["1; DROP TABLE events", "x' OR 1=1", "{p0:String}"])
def test_hostile_cohort_breakdown_and_semver_ranges_are_rejected(value):
    for q in (trends(events("e"), breakdownFilter={"breakdown": ["all", value], "breakdown_type": "cohort"}),
              trends(events("e"), properties=[{"type": "event", "key": "v", "operator": "semver_tilde",
                                               "value": value}])):
        with pytest.raises(QueryError):
            TrendsRunner(parse_query(q), Scope(7, "UTC", NOW)).compile()


@pytest.mark.parametrize("key", ["distinct_id; DROP", "`x`"])
def test_hostile_metadata_breakdown_is_rejected(key):
    q = trends(events("e"), breakdownFilter={"breakdown": key, "breakdown_type": "event_metadata"})
    with pytest.raises(QueryError):
        TrendsRunner(parse_query(q), Scope(7, "UTC", NOW)).compile()


class TestPrinterRefuses:
    def test_bad_identifier(self):
        with pytest.raises(ValueError):
            Printer().print(ir.Select(columns=(ir.Column("a`b"),)))

    def test_unknown_function(self):
        with pytest.raises(ValueError):
            Printer().print(ir.Select(columns=(ir.call("system.shutdown"),)))

    def test_bad_param_type(self):
        with pytest.raises(ValueError):
            Printer().print(ir.Select(columns=(ir.Param(1, "String}) OR ({x:String"),)))

    def test_const_must_be_number(self):
        with pytest.raises(TypeError):
            ir.Const("1; DROP")  # type: ignore[arg-type]

    def test_unknown_node(self):
        with pytest.raises(TypeError):
            Printer().visit(object())

    def test_values_become_params(self):
        sql, params = Printer().print(ir.Select(columns=(ir.eq(ir.Column("event", "e"), ir.string("x'")),)))
        assert sql == "SELECT (`e`.`event` = {p0:String})" and params == {"p0": "x'"}


async def test_hostile_values_match_literally(engine):
    hostile = "x' OR '1'='1"
    await insert_events(engine.ch, engine.env_id, [
        {"event": hostile, "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "properties": {hostile: hostile}},
        {"event": "other", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z"},
    ])
    q = trends(events(hostile, properties=[{"key": hostile, "value": hostile}]),
               dateRange={"date_from": "2020-01-10", "date_to": "2020-01-12"}, breakdownFilter={"breakdown": hostile})
    rows = await engine.results(q, now="2020-01-12T12:00:00Z")
    assert [(r["breakdown_value"], r["count"]) for r in rows] == [(hostile, 1)]

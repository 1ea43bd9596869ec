"""Follow-ups to the spec audit (tests/query_engine/test_spec_audit.py): the edges around each fix —
relative sub-hour offsets (§3.1/§3.2), dropped action series in formulas (§6, §9), ignored filters
(§5.1), Boolean breakdowns (§5.3/§7.2), and the current range on every row (§10.2/§10.3)."""

from __future__ import annotations

import pytest

from app.errors import QueryError
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events

NOW = "2020-01-19T12:00:00Z"
RANGE = {"date_from": "2020-01-15", "date_to": "2020-01-19"}
DAYS = [f"2020-01-{d}T00:00:00Z" for d in range(15, 20)]
ACTION = {"kind": "ActionsNode", "id": 4242}


def ev(ts: str, distinct_id: str = "a", event: str = "p", **props):
    return {"event": event, "distinct_id": distinct_id, "timestamp": ts, "properties": props}


class TestRelativeOffsets:
    @pytest.mark.parametrize("interval,date_from,expected", [
        ("hour", "-6h", "2020-01-19T06:00:00Z"),      # hours: the start of the hour
        ("day", "-6h", "2020-01-19T06:00:00Z"),
        ("hour", "-90s", "2020-01-19T00:00:00Z"),     # seconds: the start of the day
        ("day", "-90M", "2020-01-19T00:00:00Z"),
        ("minute", "-90s", "2020-01-19T11:58:30Z"),   # minute/second intervals: exact
        ("second", "-90s", "2020-01-19T11:58:30Z"),
        ("second", "-2M", "2020-01-19T11:58:00Z"),
    ])
    async def test_truncation(self, engine, interval, date_from, expected):
        body = await engine.query(trends(events("a"), interval=interval, dateRange={"date_from": date_from}), now=NOW)
        assert body["resolved_date_range"]["date_from"] == expected

    async def test_exact_time_range_keeps_minutes(self, engine):
        body = await engine.query(trends(events("a"), dateRange={"date_from": "-30M"},
                                         trendsFilter={"display": "BoldNumber"}), now=NOW)
        assert body["resolved_date_range"]["date_from"] == "2020-01-19T11:30:00Z"


class TestDroppedActions:
    async def test_only_actions_have_no_rows(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z")])
        assert await engine.results(trends(ACTION, dateRange=RANGE), now=NOW) == []
        assert await engine.results(trends(ACTION, dateRange=RANGE, breakdownFilter={"breakdown": "x"},
                                           compareFilter={"compare": True}), now=NOW) == []
        assert await engine.results(trends(ACTION, dateRange={"date_from": "all"}), now=NOW) == []
        assert await engine.results(trends(ACTION, dateRange=RANGE, trendsFilter={"formula": "A"}), now=NOW) == []

    async def test_action_keeps_its_order_and_letter(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z"), ev("2020-01-17T10:00:00Z"),
                                                       ev("2020-01-17T11:00:00Z", event="q")])
        results = await engine.results(trends(events("p"), ACTION, events("q"), dateRange=RANGE), now=NOW)
        assert [(r["label"], r["order"]) for r in results] == [("p", 0), ("q", 2)]
        # In a formula the dropped series counts as zeros (a zero-filled stand-in, §9).
        results = await engine.results(trends(events("p"), ACTION, events("q"), dateRange=RANGE,
                                              trendsFilter={"formula": "A + B * 10 + C"}), now=NOW)
        assert [r["data"] for r in results] == [[0, 1, 2, 0, 0]]
        results = await engine.results(trends(ACTION, events("p"), dateRange=RANGE,
                                              trendsFilter={"formula": "A + B"}), now=NOW)
        assert [r["data"] for r in results] == [[0, 1, 1, 0, 0]]

    async def test_formula_with_breakdown_and_compare(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z", x="u"),
                                                       ev("2020-01-17T10:00:00Z", x="v")])
        results = await engine.results(trends(events("p"), ACTION, dateRange=RANGE, breakdownFilter={"breakdown": "x"},
                                              trendsFilter={"formula": "A - B"}), now=NOW)
        assert sorted((r["breakdown_value"], r["count"]) for r in results) == [("u", 1.0), ("v", 1.0)]
        results = await engine.results(trends(events("p"), ACTION, dateRange=RANGE, compareFilter={"compare": True},
                                              trendsFilter={"formula": "A + B"}), now=NOW)
        assert [(r["compare_label"], r["count"]) for r in results] == [("current", 2.0), ("previous", 0.0)]

    async def test_action_inside_a_group_matches_nothing(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z")])
        group = {"kind": "GroupNode", "operator": "OR", "nodes": [events("p"), ACTION]}
        results = await engine.results(trends(group, dateRange=RANGE), now=NOW)
        assert results[0]["data"] == [0, 1, 0, 0, 0]
        results = await engine.results(trends({**group, "operator": "AND"}, dateRange=RANGE), now=NOW)
        assert results[0]["data"] == [0] * 5

    async def test_action_fields_are_still_checked(self, engine):
        with pytest.raises(QueryError):
            await engine.results(trends({**ACTION, "math": "hogql", "math_hogql": "nope()"}, dateRange=RANGE), now=NOW)


class TestIgnoredFilters:
    @pytest.mark.parametrize("item", [
        {},
        {"type": "event"},
        {"type": "person", "value": "x"},                       # no key
        {"type": "event", "key": "b", "operator": "icontains"},  # no value
        {"type": "event", "key": "b", "operator": "gt", "value": None},
        {"type": "event", "key": "b", "operator": "semver_gt"},
        {"type": "element", "key": "text"},
        {"type": "cohort"},
        {"type": "hogql"},
        {"type": "AND", "values": [{}, {"key": "b", "operator": "regex"}]},
    ])
    async def test_is_true(self, engine, item):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z", b="x"), ev("2020-01-17T10:00:00Z")])
        for query in (trends(events("p", properties=[item]), dateRange=RANGE),
                      trends(events("p"), properties=[item], dateRange=RANGE),
                      trends(events("p"), properties={"type": "OR", "values": [{"type": "AND", "values": [item]}]},
                             dateRange=RANGE)):
            results = await engine.results(query, now=NOW)
            assert results[0]["data"] == [0, 1, 1, 0, 0], query

    async def test_valueless_operators_still_apply(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z", b="x"), ev("2020-01-17T10:00:00Z")])
        for op, data in (("is_set", [0, 1, 0, 0, 0]), ("is_not_set", [0, 0, 1, 0, 0])):
            results = await engine.results(trends(events("p", properties=[{"key": "b", "operator": op}]),
                                                  dateRange=RANGE), now=NOW)
            assert results[0]["data"] == data


class TestBooleanBreakdowns:
    async def test_values(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            ev("2020-01-15T10:00:00Z", "a", flag=True), ev("2020-01-15T11:00:00Z", "b", flag=1),
            ev("2020-01-16T10:00:00Z", "c", flag=0), ev("2020-01-16T11:00:00Z", "d", flag=False),
            ev("2020-01-17T11:00:00Z", "e", flag="true"), ev("2020-01-17T12:00:00Z", "f"),
        ])
        await engine.property_type("flag", "Boolean")
        # PostHog reads a Boolean property as toBool(transform(toString(p), ['true','false'], [1,0], NULL)):
        # `1`, `0` and a missing value are all the null sentinel.
        expected = {"true": 2.0, "false": 1.0, "$$_posthog_breakdown_null_$$": 3.0}
        results = await engine.results(trends(events("p"), dateRange=RANGE, breakdownFilter={"breakdown": "flag"}),
                                       now=NOW)
        assert {r["breakdown_value"]: r["count"] for r in results} == expected
        assert {r["label"] for r in results} == set(expected)
        results = await engine.results(trends(events("p"), dateRange=RANGE,
                                              breakdownFilter={"breakdowns": [{"property": "flag"}]}), now=NOW)
        assert {r["breakdown_value"][0]: r["count"] for r in results} == expected
        # Undeclared, the same property keeps its JSON text.
        results = await engine.results(trends(events("p"), dateRange=RANGE,
                                              breakdownFilter={"breakdowns": [{"property": "flag", "type": "person"}]}),
                                       now=NOW)
        assert {r["breakdown_value"][0] for r in results} == {"$$_posthog_breakdown_null_$$"}


class TestRowsCarryTheCurrentRange:
    async def test_compare_rows(self, engine):
        body = await engine.query(trends(events("p"), dateRange=RANGE, compareFilter={"compare": True}), now=NOW)
        current, previous = body["results"]
        assert previous["compare_label"] == "previous"
        assert current["action"]["days"] == previous["action"]["days"] == DAYS
        assert previous["days"] == [f"2020-01-{d:02d}" for d in range(10, 15)]
        assert current["filter"] == previous["filter"]
        assert previous["filter"]["date_from"] == "2020-01-15T00:00:00Z"

    async def test_total_value_compare_rows(self, engine):
        results = await engine.results(trends(events("p"), dateRange=RANGE, compareFilter={"compare": True},
                                              trendsFilter={"display": "BoldNumber"}), now=NOW)
        assert [r["action"]["days"] for r in results] == [DAYS, DAYS]
        assert all(r["days"] == [] and r["data"] == [] for r in results)

    async def test_echo_keeps_set_keys(self, engine):
        body = await engine.query(trends(events("p"), dateRange=RANGE, samplingFactor=0.5,
                                         breakdownFilter={"breakdown": "x"}), now=NOW)
        assert body["results"] == []
        body = await engine.query(trends(events("p"), dateRange=RANGE, samplingFactor=0.5, interval="hour"), now=NOW)
        echo = body["results"][0]["filter"]
        assert echo["sampling_factor"] == 0.5 and echo["interval"] == "hour"
        assert echo["date_from"] == "2020-01-15T00:00:00Z" and echo["date_to"] == "2020-01-19T00:00:00Z"

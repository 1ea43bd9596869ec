"""Scenarios ported from PostHog's published trends tests (the hogql trends query runner and the
legacy trends suites): the same events and persons, replayed in our engine, must give the numbers,
labels and breakdown values PostHog's tests expect. Each test names the upstream test it follows.

The data is rebuilt here in our own terms; only the expected facts carry over."""

from __future__ import annotations

import pytest

from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events, insert_group, insert_person

NULL = "$$_posthog_breakdown_null_$$"
OTHER = "$$_posthog_breakdown_other_$$"
LATER = "2020-01-25T12:00:00Z"  # a clock safely after every absolute range below

# Four people, each with fixed event properties (copied onto every event they send), and their
# $pageview / $pageleave timestamps (all at noon UTC on the given January 2020 days).
PEOPLE = {
    "p1": ({"$browser": "Chrome", "prop": 10, "bool_field": True}, [11, 12, 13, 15, 17, 19], [11, 12, 13]),
    "p2": ({"$browser": "Firefox", "prop": 20, "bool_field": False}, [9, 12], [13]),
    "p3": ({"$browser": "Edge", "prop": 30, "bool_field": True}, [12], [13]),
    "p4": ({"$browser": "Safari", "prop": 40, "bool_field": False}, [15], [16]),
}


def _person_props(distinct_id: str) -> dict:
    return {"name": distinct_id, **({"email": "test@posthog.com"} if distinct_id == "p1" else {})}


@pytest.fixture
async def four(engine):
    """The runner suite's standard data set: 10 pageviews and 6 pageleaves over 2020-01-09..19."""
    rows = []
    for distinct_id, (props, views, leaves) in PEOPLE.items():
        await insert_person(engine.ch, engine.env_id, [distinct_id], _person_props(distinct_id))
        for event, days in (("$pageview", views), ("$pageleave", leaves)):
            rows += [{"event": event, "distinct_id": distinct_id, "timestamp": f"2020-01-{d:02d}T12:00:00Z",
                      "properties": props, "person_properties": _person_props(distinct_id)} for d in days]
    await insert_events(engine.ch, engine.env_id, rows)
    await engine.property_type("$browser", "String")
    await engine.property_type("prop", "Numeric")
    await engine.property_type("bool_field", "Boolean")
    return engine


def q(date_from, date_to, *series, interval="day", **fields):
    return trends(*(series or [events("$pageview")]), interval=interval,
                  dateRange={"date_from": date_from, "date_to": date_to}, **fields)


PV, PL = events("$pageview"), events("$pageleave")


class TestRunnerBasics:
    async def test_trends_data_count_days_labels(self, four):
        row = (await four.results(q("2020-01-09", "2020-01-19"), now=LATER))[0]
        assert row["label"] == "$pageview"
        assert row["count"] == 10
        assert row["data"] == [1, 0, 1, 3, 1, 0, 2, 0, 1, 0, 1]
        assert row["days"] == [f"2020-01-{d:02d}" for d in range(9, 20)]
        assert row["labels"] == [f"{d}-Jan-2020" for d in range(9, 20)]

    async def test_trends_labels_hour(self, four):
        row = (await four.results(q("2020-01-09", "2020-01-09", interval="hour"), now=LATER))[0]
        assert row["labels"] == ["9-Jan 00:00"]

    async def test_trends_multiple_series(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-19", PV, PL), now=LATER)
        assert [r["label"] for r in rows] == ["$pageview", "$pageleave"]
        assert [r["count"] for r in rows] == [10, 6]
        assert rows[1]["data"] == [0, 0, 1, 1, 3, 0, 0, 1, 0, 0, 0]


class TestRunnerFormulas:
    async def test_formula(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-19", PV, PL, trendsFilter={"formulas": ["A+2*B"]}),
                                  now=LATER)
        assert len(rows) == 1
        assert rows[0]["label"] == "Formula (A+2*B)" and rows[0]["count"] == 22
        assert rows[0]["data"] == [1, 0, 3, 5, 7, 0, 2, 2, 1, 0, 1]

    async def test_multiple_formulas(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-19", PV, PL,
                                    trendsFilter={"formulas": ["A+2*B", "A-B"]}), now=LATER)
        assert [(r["label"], r["count"]) for r in rows] == [("Formula (A+2*B)", 22), ("Formula (A-B)", 4)]
        assert rows[1]["data"] == [1, 0, 0, 2, -2, 0, 2, -1, 1, 0, 1]

    @pytest.mark.parametrize(("compare_to", "previous", "previous_count"), [
        (None, [0, 3, 5, 7, 0], 15),  # test_formula_with_compare
        ("-2d", [7, 0, 2, 2, 1], 12),  # test_formula_with_compare_to_day
        ("-1w", [0, 1, 0, 3, 5], 9),  # test_formula_with_compare_to_week
    ])
    async def test_formula_with_compare(self, four, compare_to, previous, previous_count):
        compare = {"compare": True, **({"compare_to": compare_to} if compare_to else {})}
        rows = await four.results(q("2020-01-15", "2020-01-19", PV, PL, trendsFilter={"formula": "A+2*B"},
                                    compareFilter=compare), now=LATER)
        assert len(rows) == 2
        assert [r["compare_label"] for r in rows] == ["current", "previous"]
        assert rows[0]["data"] == [2, 2, 1, 0, 1] and rows[0]["count"] == 6
        assert rows[1]["data"] == previous and rows[1]["count"] == previous_count
        assert rows[0]["label"] == "Formula (A+2*B)" and rows[0]["compare"] is True

    @pytest.mark.parametrize(("compare_to", "previous"), [(None, 15), ("-1w", 9)])
    async def test_formula_with_compare_total_value(self, four, compare_to, previous):
        compare = {"compare": True, **({"compare_to": compare_to} if compare_to else {})}
        rows = await four.results(q("2020-01-15", "2020-01-19", PV, PL, compareFilter=compare,
                                    trendsFilter={"formula": "A+2*B", "display": "BoldNumber"}), now=LATER)
        assert [(r["compare_label"], r["aggregated_value"]) for r in rows] == [("current", 6), ("previous", previous)]
        assert rows[0]["label"] == "Formula (A+2*B)" and rows[0]["count"] == 0
        assert rows[0].get("data") is None

    async def test_formula_with_breakdown(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20", PV, PL, trendsFilter={"formula": "A+2*B"},
                                    breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"}),
                                  now=LATER)
        assert len(rows) == 4
        assert (rows[0]["breakdown_value"], rows[0]["count"]) == ("Chrome", 12)
        assert rows[0]["data"] == [0, 0, 3, 3, 3, 0, 1, 0, 1, 0, 1, 0]
        assert (rows[1]["breakdown_value"], rows[1]["count"]) == ("Firefox", 4)
        assert rows[0]["label"] == "Formula (A+2*B)" and rows[0]["action"] is None

    async def test_formula_with_breakdown_and_compare(self, four):
        rows = await four.results(q("2020-01-15", "2020-01-19", PV, PL, trendsFilter={"formula": "A+2*B"},
                                    breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"},
                                    compareFilter={"compare": True}), now=LATER)
        assert len(rows) == 5
        assert [(r["compare_label"], r["breakdown_value"], r["count"]) for r in rows[:3]] == [
            ("current", "Chrome", 3), ("current", "Safari", 3), ("previous", "Chrome", 9)]
        assert rows[0]["data"] == [1, 0, 1, 0, 1]
        assert rows[2]["label"] == "Formula (A+2*B)"

    async def test_formula_with_breakdown_and_compare_to(self, four):
        rows = await four.results(q("2020-01-15", "2020-01-19", PV, PL, trendsFilter={"formula": "A+2*B"},
                                    breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"},
                                    compareFilter={"compare": True, "compare_to": "-3d"}), now=LATER)
        assert len(rows) == 6
        assert [(r["compare_label"], r["breakdown_value"], r["count"]) for r in rows[:3]] == [
            ("current", "Chrome", 3), ("current", "Safari", 3), ("previous", "Chrome", 7)]
        assert rows[2]["data"] == [3, 3, 0, 1, 0]

    async def test_formula_with_breakdown_and_compare_total_value(self, four):
        rows = await four.results(q("2020-01-15", "2020-01-19", PV, PL,
                                    trendsFilter={"formula": "A+2*B", "display": "BoldNumber"},
                                    breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"},
                                    compareFilter={"compare": True}), now=LATER)
        assert len(rows) == 5
        assert [(r["compare_label"], r["breakdown_value"], r["aggregated_value"]) for r in rows[:3]] == [
            ("current", "Chrome", 3), ("current", "Safari", 3), ("previous", "Chrome", 9)]
        assert rows[0]["count"] == 0 and rows[0].get("data") is None

    async def test_formula_with_breakdown_and_no_data(self, four):
        breakdown = {"breakdown_type": "person", "breakdown": "$browser"}
        rows = await four.results(q("2020-01-09", "2020-01-19", events("$pageviewxxx"), events("$pageleavexxx"),
                                    trendsFilter={"formula": "A+2*B"}, breakdownFilter=breakdown), now=LATER)
        assert rows == []
        rows = await four.results(q("2020-01-09", "2020-01-19", PV, events("$pageleavexxx"),
                                    trendsFilter={"formula": "A+2*B"}, breakdownFilter=breakdown), now=LATER)
        assert rows[0]["data"] == [1, 0, 1, 3, 1, 0, 2, 0, 1, 0, 1]


class TestRunnerCompareAndBreakdowns:
    async def test_trends_compare(self, four):
        rows = await four.results(q("2020-01-15", "2020-01-19", compareFilter={"compare": True}), now=LATER)
        assert [(r["compare"], r["compare_label"]) for r in rows] == [(True, "current"), (True, "previous")]
        assert rows[0]["days"] == [f"2020-01-{d}" for d in range(15, 20)]
        assert rows[1]["days"] == [f"2020-01-{d}" for d in range(10, 15)]
        assert rows[1]["labels"] == [f"{d}-Jan-2020" for d in range(10, 15)]

    async def test_trends_compare_weeks(self, four):
        rows = await four.results(q("-7d", None, compareFilter={"compare": True}), now="2020-01-24T00:00:00Z")
        assert rows[0]["days"] == [f"2020-01-{d}" for d in range(17, 25)]
        assert rows[1]["days"] == [f"2020-01-{d}" for d in range(10, 18)]
        assert rows[1]["labels"][0] == "10-Jan-2020" and rows[0]["labels"][-1] == "24-Jan-2020"

    async def test_trends_breakdowns(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20",
                                    breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"}), now=LATER)
        assert [(r["breakdown_value"], r["label"], r["count"]) for r in rows] == [
            ("Chrome", "Chrome", 6), ("Firefox", "Firefox", 2), ("Edge", "Edge", 1), ("Safari", "Safari", 1)]

    async def test_trends_breakdowns_boolean(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20",
                                    breakdownFilter={"breakdown_type": "event", "breakdown": "bool_field"}), now=LATER)
        assert [(r["breakdown_value"], r["label"], r["count"]) for r in rows] == [("true", "true", 7),
                                                                                  ("false", "false", 3)]

    async def test_trends_breakdowns_histogram(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20", breakdownFilter={
            "breakdown_type": "event", "breakdown": "prop", "breakdown_histogram_bin_count": 4}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == ["[10,17.5]", "[17.5,25]", "[25,32.5]", "[32.5,40.01]"]
        assert [r["label"] for r in rows] == ["[10,17.5]", "[17.5,25]", "[25,32.5]", "[32.5,40.01]"]
        assert [r["data"] for r in rows] == [
            [0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0],
            [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        ]

    async def test_trends_breakdowns_session_duration_histogram(self, four):
        # No event has a $session_id: each bin's events are one session ('') of 0 s, not missing values.
        series = events("$pageview", math="avg", math_property="$session_duration")
        rows = await four.results(q("2020-01-09", "2020-01-20", series, breakdownFilter={
            "breakdown_type": "event", "breakdown": "prop", "breakdown_histogram_bin_count": 4}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == ["[10,17.5]", "[17.5,25]", "[25,32.5]", "[32.5,40.01]"]
        assert [r["label"] for r in rows] == ["[10,17.5]", "[17.5,25]", "[25,32.5]", "[32.5,40.01]"]

    async def test_trends_breakdowns_multiple_hogql(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20", PV, PL, breakdownFilter={
            "breakdown_type": "hogql", "breakdown": "properties.$browser"}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == ["Chrome", "Firefox", "Edge", "Safari",
                                                        "Chrome", "Edge", "Firefox", "Safari"]
        assert rows[0]["label"] == "$pageview - Chrome" and rows[5]["label"] == "$pageleave - Edge"
        assert [r["count"] for r in rows] == [6, 2, 1, 1, 3, 1, 1, 1]

    async def test_trends_breakdowns_and_compare(self, four):
        rows = await four.results(q("2020-01-15", "2020-01-20", compareFilter={"compare": True},
                                    breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"}), now=LATER)
        assert [(r["compare_label"], r["breakdown_value"], r["count"]) for r in rows] == [
            ("current", "Chrome", 3), ("current", "Safari", 1),
            ("previous", "Chrome", 3), ("previous", "Firefox", 2), ("previous", "Edge", 1)]

    async def test_trends_breakdown_and_aggregation_query_orchestration(self, four):
        series = events("$pageview", math="sum", math_property="prop")
        rows = await four.results(q("2020-01-09", "2020-01-20", series,
                                    breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == ["Chrome", "Firefox", "Safari", "Edge"]
        assert rows[0]["data"] == [0, 0, 10, 10, 10, 0, 10, 0, 10, 0, 10, 0]
        assert rows[1]["data"] == [20, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0]
        assert rows[2]["data"] == [0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 0, 0]
        assert rows[3]["data"] == [0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0]


class TestRunnerMath:
    @pytest.mark.parametrize(("series", "expected"), [
        ({"math": "hogql", "math_hogql": "sum(properties.prop)"}, [20, 0, 10, 60, 10, 0, 50, 0, 10, 0, 10, 0]),
        ({"math": "dau"}, [1, 0, 1, 3, 1, 0, 2, 0, 1, 0, 1, 0]),
        ({"math": "weekly_active"}, [1, 1, 2, 3, 3, 3, 4, 4, 4, 4, 2, 2]),
        ({"math": "monthly_active"}, [1, 1, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4]),
        ({"math": "unique_session"}, [1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0]),  # no $session_id: '' is one
        ({"math": "sum", "math_property": "prop"}, [20, 0, 10, 60, 10, 0, 50, 0, 10, 0, 10, 0]),
        ({"math": "avg", "math_property": "prop"}, [20, 0, 10, 20, 10, 0, 25, 0, 10, 0, 10, 0]),
        ({"math": "max_count_per_actor"}, [1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0]),
    ], ids=["hogql", "dau", "wau", "mau", "unique_session", "sum", "avg", "max_count_per_actor"])
    async def test_daily_math(self, four, series, expected):
        rows = await four.results(q("2020-01-09", "2020-01-20", events("$pageview", **series)), now=LATER)
        assert len(rows) == 1 and rows[0]["data"] == expected

    async def test_trends_aggregation_wau_long_interval(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20", events("$pageview", math="weekly_active"),
                                    interval="week"), now=LATER)
        assert rows[0]["data"] == [2, 4, 1]

    async def test_trends_aggregation_mau_long_interval(self, four):
        rows = await four.results(q("2019-12-31", "2020-02-01", events("$pageview", math="monthly_active"),
                                    interval="month"), now="2020-02-10T00:00:00Z")
        assert rows[0]["data"] == [0, 4, 0]

    @pytest.mark.parametrize("interval", ["day", "month"])  # test_trends_display_aggregate(_interval)
    async def test_trends_display_aggregate(self, four, interval):
        rows = await four.results(q("2020-01-09", "2020-01-20", interval=interval,
                                    trendsFilter={"display": "BoldNumber"}), now=LATER)
        assert len(rows) == 1
        assert (rows[0]["data"], rows[0]["days"], rows[0]["count"], rows[0]["aggregated_value"]) == ([], [], 0, 10)

    async def test_trends_display_cumulative(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20",
                                    trendsFilter={"display": "ActionsLineGraphCumulative"}), now=LATER)
        assert rows[0]["count"] == 10
        assert rows[0]["data"] == [1, 1, 2, 5, 6, 6, 8, 8, 9, 9, 10, 10]


class TestRunnerBreakdownLimits:
    @pytest.fixture
    async def thirty(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": f"person_{i}", "timestamp": "2020-01-11T12:00:00Z",
             "properties": {"breakdown_value": f"{i}"}} for i in range(30)])
        return engine

    @pytest.mark.parametrize(("display", "extra", "expected"), [
        ("ActionsLineGraph", {}, 26),
        ("ActionsLineGraph", {"breakdown_limit": 10}, 11),
        ("ActionsLineGraph", {"breakdown_limit": 10, "breakdown_hide_other_aggregation": True}, 10),
        ("ActionsTable", {"breakdown_limit": 10}, 11),
        ("ActionsTable", {"breakdown_limit": 10, "breakdown_hide_other_aggregation": True}, 10),
    ])
    @pytest.mark.parametrize("multiple", [False, True])  # test_breakdown_values_limit / test_multiple_…
    async def test_breakdown_values_limit(self, thirty, display, extra, expected, multiple):
        breakdown = ({"breakdowns": [{"property": "breakdown_value", "type": "event"}]} if multiple
                     else {"breakdown": "breakdown_value", "breakdown_type": "event"})
        response = await thirty.query(q("2020-01-09", "2020-01-20", trendsFilter={"display": display},
                                        breakdownFilter={**breakdown, **extra}), now=LATER)
        assert len(response["results"]) == expected
        assert response["hasMore"] is True


class TestRunnerDisplayAndFilters:
    async def test_previous_period_with_number_display(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20", trendsFilter={"display": "BoldNumber"},
                                    compareFilter={"compare": True}), now=LATER)
        assert len(rows) == 2

    async def test_formula_rounding(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": event, "distinct_id": f"person_{i}", "timestamp": "2020-01-11T12:00:00Z"}
            for i, event in enumerate(["$pageleave", "$pageview", "$pageview", "$pageview"], start=1)])
        rows = await engine.results(q("2020-01-11T00:00:00Z", "2020-01-11T23:59:59Z", PV, PL,
                                      trendsFilter={"formula": "B/A"}), now=LATER)
        assert len(rows) == 1 and rows[0]["data"] == [1 / 3]

    async def test_properties_filtering_with_empty_string_as_property(self, engine):
        await engine.configure(test_account_filters=[{"key": "$some_property", "type": "event", "operator": "is_not",
                                                      "value": ["other_value", "yet_another_value"]}])
        await insert_events(engine.ch, engine.env_id, [{"event": "$pageview", "distinct_id": "person_1",
                                                        "timestamp": "2020-01-11T12:00:00Z",
                                                        "properties": {"$some_property": ""}}])
        rows = await engine.results(q("2020-01-11T00:00:00Z", "2020-01-11T23:59:59Z", filterTestAccounts=True),
                                    now=LATER)
        assert rows[0]["data"] == [1]

    async def test_smoothing(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20", trendsFilter={"smoothingIntervals": 7}), now=LATER)
        assert rows[0]["data"] == [1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]

    async def test_trends_multiple_event_breakdowns(self, four):
        two = [{"type": "event", "property": "$browser"}, {"type": "event", "property": "prop"}]
        rows = await four.results(q("2020-01-09", "2020-01-20", breakdownFilter={"breakdowns": two}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == [["Chrome", "10"], ["Firefox", "20"], ["Edge", "30"],
                                                        ["Safari", "40"]]
        assert [r["label"] for r in rows] == ["Chrome::10", "Firefox::20", "Edge::30", "Safari::40"]
        assert [r["count"] for r in rows] == [6, 2, 1, 1]
        three = two + [{"type": "event", "property": "bool_field"}]
        rows = await four.results(q("2020-01-09", "2020-01-20", breakdownFilter={"breakdowns": three}), now=LATER)
        assert [r["label"] for r in rows] == ["Chrome::10::true", "Firefox::20::false", "Edge::30::true",
                                              "Safari::40::false"]

    async def test_trends_event_and_person_breakdowns(self, four):
        breakdowns = [{"type": "event", "property": "$browser"}, {"type": "person", "property": "name"}]
        rows = await four.results(q("2020-01-09", "2020-01-20", breakdownFilter={"breakdowns": breakdowns}),
                                  now=LATER)
        assert [r["label"] for r in rows] == ["Chrome::p1", "Firefox::p2", "Edge::p3", "Safari::p4"]
        assert [r["count"] for r in rows] == [6, 2, 1, 1]


@pytest.fixture
async def grouped(four):
    """The same people, with groups: p1 org:5, p2 org:6, p3 org:7 + company:10 (type 1), and p4 whose
    $group_0 names a key that has no type-0 group."""
    await insert_group(four.ch, four.env_id, 0, "org:5", {"name": "Hedgeflix", "industry": "finance"})
    await insert_group(four.ch, four.env_id, 0, "org:6", {"name": "Hedgebox", "industry": "technology"})
    await insert_group(four.ch, four.env_id, 0, "org:7", {"name": "Hedgebank", "industry": "finance"})
    await insert_group(four.ch, four.env_id, 1, "company:10",
                       {"name": "Hedgeheadquarters", "industry": "service", "employee_count": "50-249"})
    groups = {"p1": {"$group_0": "org:5"}, "p2": {"$group_0": "org:6"},
              "p3": {"$group_0": "org:7", "$group_1": "company:10"}, "p4": {"$group_0": "company:10"}}
    rows = []
    for distinct_id, (props, views, leaves) in PEOPLE.items():
        for event, days in (("$pageview", views), ("$pageleave", leaves)):
            rows += [{"event": event, "distinct_id": distinct_id, "timestamp": f"2019-12-{d:02d}T12:00:00Z",
                      "properties": {**props, **groups[distinct_id]}} for d in days]
    # The grouped copies live in December 2019, away from the plain data set.
    await insert_events(four.ch, four.env_id, rows)
    return four


DEC = ("2019-12-09", "2019-12-20")


class TestRunnerGroups:
    async def test_trends_event_person_group_breakdowns(self, grouped):
        breakdowns = [{"type": "event", "property": "$browser"},
                      {"type": "group", "group_type_index": 0, "property": "industry"}]
        rows = await grouped.results(q(*DEC, breakdownFilter={"breakdowns": breakdowns}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == [["Chrome", "finance"], ["Firefox", "technology"],
                                                        ["Edge", "finance"], ["Safari", NULL]]
        assert rows[3]["label"] == f"Safari::{NULL}"
        assert [r["count"] for r in rows] == [6, 2, 1, 1]

    async def test_trends_event_with_two_group_breakdowns(self, grouped):
        breakdowns = [{"type": "group", "group_type_index": 1, "property": "employee_count"},
                      {"type": "group", "group_type_index": 0, "property": "industry"}]
        rows = await grouped.results(q(*DEC, breakdownFilter={"breakdowns": breakdowns}), now=LATER)
        assert [(r["breakdown_value"], r["count"]) for r in rows] == [
            (["50-249", "finance"], 1), ([NULL, "finance"], 6), ([NULL, "technology"], 2), ([NULL, NULL], 1)]
        assert rows[3]["label"] == f"{NULL}::{NULL}"

    async def test_trends_event_with_three_group_breakdowns(self, grouped):
        breakdowns = [{"type": "group", "group_type_index": 0, "property": "industry"},
                      {"type": "group", "group_type_index": 0, "property": "name"},
                      {"type": "group", "group_type_index": 1, "property": "employee_count"}]
        rows = await grouped.results(q(*DEC, breakdownFilter={"breakdowns": breakdowns}), now=LATER)
        assert [(r["label"], r["count"]) for r in rows] == [
            ("finance::Hedgebank::50-249", 1), (f"finance::Hedgeflix::{NULL}", 6),
            (f"technology::Hedgebox::{NULL}", 2), (f"{NULL}::{NULL}::{NULL}", 1)]

    @pytest.mark.parametrize(("operator", "count"), [("exact", 6), ("is_not", 4)])
    async def test_trends_event_metadata_filter_group(self, grouped, operator, count):
        series = events("$pageview", properties=[{"type": "event_metadata", "key": "$group_0", "operator": operator,
                                                  "value": "org:5"}])
        rows = await grouped.results(q(*DEC, series), now=LATER)
        assert rows[0]["count"] == count

    async def test_trends_aggregation_monthly_active_groups_long_interval(self, grouped):
        series = events("$pageview", math="monthly_active", math_group_type_index=0)
        rows = await grouped.results(q("2019-11-30", "2020-01-01", series, interval="month"), now=LATER)
        assert rows[0]["data"] == [0, 4, 0]


async def replay(engine, props_by_person: dict[str, dict], types: dict[str, str]) -> None:
    """The four people's pageviews again, each with other properties; extra people (p5…) view once on
    the 15th."""
    rows = []
    for distinct_id, props in props_by_person.items():
        views = PEOPLE[distinct_id][1] if distinct_id in PEOPLE else [15]
        rows += [{"event": "$pageview", "distinct_id": distinct_id, "timestamp": f"2020-01-{d:02d}T12:00:00Z",
                  "properties": props} for d in views]
    await insert_events(engine.ch, engine.env_id, rows)
    for name, property_type in types.items():
        await engine.property_type(name, property_type)


BINS = {"p1": {"$bin": 4}, "p2": {"$bin": 8}, "p3": {"$bin": 16}, "p4": {"$bin": 32}, "p5": {"$bin": 64},
        "p6": {"$bin": 128}}


class TestRunnerNumericBreakdowns:
    async def test_trends_event_multiple_numeric_breakdowns(self, engine):
        await replay(engine, BINS, {"$bin": "Numeric"})
        rows = await engine.results(q("2020-01-09", "2020-01-20",
                                      breakdownFilter={"breakdowns": [{"property": "$bin"}]}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == [["4"], ["8"], ["128"], ["16"], ["32"], ["64"]]

    async def test_trends_event_multiple_numeric_breakdowns_into_bins(self, engine):
        await replay(engine, {**BINS, "p7": {}}, {"$bin": "Numeric"})
        rows = await engine.results(q("2020-01-09", "2020-01-20", breakdownFilter={
            "breakdowns": [{"property": "$bin", "histogram_bin_count": 5}]}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == [["[4,28.8]"], ["[103.2,128.01]"], ["[28.8,53.6]"],
                                                        ["[53.6,78.4]"], [NULL]]
        assert [r["count"] for r in rows] == [9, 1, 1, 1, 1]
        rows = await engine.results(q("2020-01-09", "2020-01-20", breakdownFilter={
            "breakdowns": [{"property": "$bin", "histogram_bin_count": 5}], "breakdown_limit": 2}), now=LATER)
        assert [(r["breakdown_value"], r["count"]) for r in rows] == [
            (["[4,28.8]"], 9), (["[103.2,128.01]"], 1), ([OTHER], 3)]

    async def test_trends_event_histogram_breakdowns_return_equal_result(self, engine):
        await replay(engine, {"p1": {"$bin": 4}, "p2": {"$bin": 8}, "p3": {"$bin": 16}}, {"$bin": "Numeric"})
        # p4 has no $bin and views once, on the 12th
        await insert_events(engine.ch, engine.env_id, [{"event": "$pageview", "distinct_id": "p4",
                                                         "timestamp": "2020-01-12T12:00:00Z"}])
        single = await engine.results(q("2020-01-09", "2020-01-20", breakdownFilter={
            "breakdown": "$bin", "breakdown_histogram_bin_count": 5}), now=LATER)
        multiple = await engine.results(q("2020-01-09", "2020-01-20", breakdownFilter={
            "breakdowns": [{"property": "$bin", "histogram_bin_count": 5}]}), now=LATER)
        expected = ["[4,6.4]", "[6.4,8.8]", "[13.6,16.01]", NULL]
        assert [r["breakdown_value"] for r in single] == expected
        assert [r["breakdown_value"][0] for r in multiple] == expected
        assert [r["count"] for r in single] == [r["count"] for r in multiple] == [6, 2, 1, 1]

    async def test_trends_event_breakdowns_handle_null(self, engine):
        await replay(engine, {"p1": {"$bin": 4}, "p2": {"$second_bin": 2}},
                     {"$bin": "Numeric", "$second_bin": "Numeric"})
        single = {"breakdown": "$bin", "breakdown_histogram_bin_count": 10}
        rows = await engine.results(q("2020-01-09", "2020-01-20", breakdownFilter=single), now=LATER)
        assert [r["breakdown_value"] for r in rows] == ["[4,4.01]", NULL]
        rows = await engine.results(q("2020-01-14", "2020-01-20", breakdownFilter={
            "breakdown": "$second_bin", "breakdown_histogram_bin_count": 10}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == [NULL]
        two = [{"property": "$bin", "histogram_bin_count": 10}, {"property": "$second_bin", "histogram_bin_count": 10}]
        rows = await engine.results(q("2020-01-09", "2020-01-20", breakdownFilter={"breakdowns": two}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == [["[4,4.01]", NULL], [NULL, "[2,2.01]"]]


class TestRunnerMixedBreakdowns:
    async def test_trends_event_breakdowns_can_combine_bool_string_and_numeric(self, four):
        items = [{"property": "prop", "histogram_bin_count": 2}, {"property": "$browser"}, {"property": "bool_field"}]
        rows = await four.results(q("2020-01-09", "2020-01-20", breakdownFilter={"breakdowns": items}), now=LATER)
        assert [sorted(r["breakdown_value"]) for r in rows] == [
                sorted(["[10,25]", "Chrome", "true"]), sorted(["[10,25]", "Firefox", "false"]),
                sorted(["[25,40.01]", "Edge", "true"]), sorted(["[25,40.01]", "Safari", "false"])]

    async def test_trends_multiple_breakdowns_hogql_and_numeric_prop(self, four):
        breakdowns = [{"property": "properties.$browser", "type": "hogql"},
                      {"property": "prop", "histogram_bin_count": 2}]
        rows = await four.results(q("2020-01-09", "2020-01-20", breakdownFilter={"breakdowns": breakdowns}), now=LATER)
        assert [r["label"] for r in rows] == ["Chrome::[10,25]", "Firefox::[10,25]", "Edge::[25,40.01]",
                                              "Safari::[25,40.01]"]
        assert [r["count"] for r in rows] == [6, 2, 1, 1]

    async def test_to_insight_query_applies_multiple_breakdowns(self, four):
        breakdowns = [{"type": "event", "property": "$browser"},
                      {"type": "event", "property": "prop", "histogram_bin_count": 2},
                      {"type": "event", "property": "bool_field"}]
        rows = await four.results(q("2020-01-09", "2020-01-20", trendsFilter={"display": "ActionsBarValue"},
                                    breakdownFilter={"breakdowns": breakdowns}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == [
            ["Chrome", "[10,25]", "true"], ["Firefox", "[10,25]", "false"],
            ["Edge", "[25,40.01]", "true"], ["Safari", "[25,40.01]", "false"]]

    async def test_trends_event_math_mau_with_breakdowns(self, four):
        series = events("$pageview", math="monthly_active")
        for breakdown in ({"breakdown": "$browser"}, {"breakdowns": [{"property": "$browser", "type": "event"}]}):
            rows = await four.results(q("2020-01-09", "2020-02-10", series, breakdownFilter=breakdown),
                                      now="2020-02-15T00:00:00Z")
            values = [r["breakdown_value"] for r in rows]
            assert [v[0] if isinstance(v, list) else v for v in values] == ["Firefox", "Chrome", "Edge", "Safari"]
            assert [r["count"] for r in rows] == [33, 31, 30, 27]


class TestRunnerTotalValueBreakdowns:
    @pytest.mark.parametrize("multiple", [False, True])
    async def test_to_insight_query_applies_breakdown_limit(self, four, multiple):
        breakdown = ({"breakdowns": [{"property": "$browser"}]} if multiple else {"breakdown": "$browser"})
        rows = await four.results(q("2020-01-09", "2020-01-20", trendsFilter={"display": "ActionsBarValue"},
                                    breakdownFilter={**breakdown, "breakdown_limit": 2}), now=LATER)
        values = ["Chrome", "Firefox", OTHER]
        assert [r["breakdown_value"] for r in rows] == ([[v] for v in values] if multiple else values)

    @pytest.mark.parametrize("display", ["ActionsPie", "ActionsBarValue", "ActionsTable"])
    @pytest.mark.parametrize("multiple", [False, True])
    async def test_trends_table_uses_breakdown_bins(self, four, display, multiple):
        breakdown = ({"breakdowns": [{"property": "prop", "type": "event", "histogram_bin_count": 2}]} if multiple
                     else {"breakdown": "prop", "breakdown_type": "event", "breakdown_histogram_bin_count": 2})
        rows = await four.results(q("2020-01-09", "2020-01-20", trendsFilter={"display": display}, breakdownFilter={
            **breakdown, "breakdown_limit": 10, "breakdown_hide_other_aggregation": True}), now=LATER)
        values = ["[10,25]", "[25,40.01]"]
        assert [r["breakdown_value"] for r in rows] == ([[v] for v in values] if multiple else values)
        assert [r["aggregated_value"] for r in rows] == [8, 2]


FIRST = events("$pageview", math="first_time_for_user")


class TestRunnerFirstTimeForUser:
    @pytest.mark.parametrize(("date_from", "count", "data"), [
        ("2020-01-09", 4, [1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0]),
        ("2020-01-10", 3, [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0]),  # p2 started on the 9th: not counted
        ("2020-01-12", 2, [1, 0, 0, 1, 0, 0, 0, 0, 0]),  # neither p1 nor p2
        ("2020-01-16", 0, [0, 0, 0, 0, 0]),
    ])
    async def test_trends_math_first_time_for_user_basic(self, four, date_from, count, data):
        rows = await four.results(q(date_from, "2020-01-20", FIRST), now=LATER)
        assert len(rows) == 1 and rows[0]["count"] == count and rows[0]["data"] == data

    @pytest.mark.parametrize("multiple", [False, True])
    async def test_trends_math_first_time_for_user_breakdowns_basic(self, four, multiple):
        breakdown = {"breakdowns": [{"property": "$browser"}]} if multiple else {"breakdown": "$browser"}
        rows = await four.results(q("2020-01-09", "2020-01-20", FIRST, breakdownFilter=breakdown), now=LATER)
        values = ["Chrome", "Edge", "Firefox", "Safari"]
        assert [r["breakdown_value"] for r in rows] == ([[v] for v in values] if multiple else values)
        assert [r["count"] for r in rows] == [1, 1, 1, 1]
        assert [r["data"] for r in rows] == [
            [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        ]

    @pytest.mark.parametrize("multiple", [False, True])
    async def test_trends_math_first_time_for_user_breakdowns_with_bins(self, four, multiple):
        breakdown = ({"breakdowns": [{"property": "prop", "type": "event", "histogram_bin_count": 2}]} if multiple
                     else {"breakdown": "prop", "breakdown_type": "event", "breakdown_histogram_bin_count": 2})
        rows = await four.results(q("2020-01-09", "2020-01-20", FIRST, breakdownFilter=breakdown), now=LATER)
        values = ["[10,25]", "[25,40.01]"]
        assert [r["breakdown_value"] for r in rows] == ([[v] for v in values] if multiple else values)
        assert [r["count"] for r in rows] == [2, 2]
        assert [r["data"] for r in rows] == [[1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                                             [0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0]]

    @pytest.mark.parametrize(("flt", "data"), [
        ({"type": "event", "key": "$browser", "operator": "exact", "value": "Chrome"},
         [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ({"type": "person", "key": "name", "operator": "exact", "value": "p4"},
         [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]),
    ])
    async def test_trends_math_first_time_for_user_with_filters(self, four, flt, data):
        series = events("$pageview", math="first_time_for_user", properties=[flt])
        rows = await four.results(q("2020-01-09", "2020-01-20", series), now=LATER)
        assert rows[0]["count"] == 1 and rows[0]["data"] == data

    @pytest.mark.parametrize("display", ["ActionsPie", "ActionsBarValue", "ActionsTable", "BoldNumber"])
    async def test_trends_math_first_time_for_user_with_total_values(self, four, display):
        rows = await four.results(q("2020-01-09", "2020-01-20", FIRST, trendsFilter={"display": display}), now=LATER)
        assert len(rows) == 1 and rows[0]["aggregated_value"] == 4
        rows = await four.results(q("2020-01-14", "2020-01-20", FIRST, trendsFilter={"display": display}), now=LATER)
        assert rows[0]["aggregated_value"] == 1

    async def test_trends_math_first_time_for_user_handles_multiple_ids(self, engine):
        await insert_person(engine.ch, engine.env_id, ["anon1", "p1"], {})
        await insert_person(engine.ch, engine.env_id, ["anon2", "p2"], {})
        await insert_person(engine.ch, engine.env_id, ["anon3"], {})
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": "anon1", "timestamp": "2020-01-11T12:00:00Z"},
            {"event": "$pageview", "distinct_id": "p1", "person": "anon1", "timestamp": "2020-01-12T12:00:00Z"},
            {"event": "$pageview", "distinct_id": "anon2", "timestamp": "2020-01-12T12:00:00Z"},
            {"event": "$pageview", "distinct_id": "p2", "person": "anon2", "timestamp": "2020-01-12T12:01:00Z"},
            {"event": "$pageview", "distinct_id": "anon3", "timestamp": "2020-01-12T12:00:00Z"},
        ])
        rows = await engine.results(q("2020-01-09", "2020-01-12", FIRST), now=LATER)
        assert rows[0]["count"] == 3 and rows[0]["data"] == [0, 0, 1, 2]

    @pytest.mark.parametrize(("browser", "data"), [("Chrome", [0, 1, 0]), ("Safari", [0, 0, 0])])
    @pytest.mark.parametrize("where", ["series", "global"])
    async def test_trends_math_first_time_for_user_filters_first_events(self, engine, browser, data, where):
        await insert_person(engine.ch, engine.env_id, ["anon1", "p1"], {})
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": "anon1", "timestamp": "2020-01-11T12:00:00Z",
             "properties": {"$browser": "Chrome"}},
            {"event": "$pageview", "distinct_id": "p1", "person": "anon1", "timestamp": "2020-01-12T12:00:00Z",
             "properties": {"$browser": "Safari"}},
        ])
        flt = [{"type": "event", "key": "$browser", "operator": "exact", "value": browser}]
        query = (q("2020-01-10", "2020-01-12", events("$pageview", math="first_time_for_user", properties=flt))
                 if where == "series" else q("2020-01-10", "2020-01-12", FIRST, properties=flt))
        rows = await engine.results(query, now=LATER)
        assert rows[0]["data"] == data and rows[0]["count"] == sum(data)

    @pytest.mark.parametrize(("browser", "count"), [("Chrome", 1), ("Safari", 1), ("Firefox", 0)])
    async def test_trends_math_first_time_for_user_prioritizes_first_event(self, engine, browser, count):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": "p1", "timestamp": ts, "properties": {"$browser": b}}
            for ts, b in [("2020-01-11T12:00:00Z", "Chrome"), ("2020-01-11T12:00:00Z", "Safari"),
                          ("2020-01-11T12:00:01Z", "Firefox")]])
        series = events("$pageview", math="first_time_for_user",
                        properties=[{"type": "event", "key": "$browser", "operator": "exact", "value": browser}])
        rows = await engine.results(q("2020-01-10", "2020-01-12", series), now=LATER)
        assert rows[0]["count"] == count and rows[0]["data"] == [0, count, 0]

    @pytest.mark.parametrize(("date_from", "interval", "now", "count", "buckets"), [
        ("-180d", "month", "2020-01-20T00:00:00Z", 4, 7),
        ("-180d", "week", "2020-01-20T00:00:00Z", 4, 27),
        ("-30d", "hour", "2020-01-20T00:00:00Z", 4, 721),
        ("-1h", "minute", "2020-01-11T12:30:00Z", 1, 61),
    ])
    async def test_trends_math_first_time_for_user_interval_types(self, four, date_from, interval, now, count,
                                                                  buckets):
        rows = await four.results(q(date_from, None, FIRST, interval=interval), now=now)
        assert rows[0]["count"] == count and len(rows[0]["days"]) == buckets

    async def test_trends_math_first_time_for_user_all_events(self, four):
        rows = await four.results(q("-180d", None, events(None, math="first_time_for_user"), interval="month"),
                                  now="2020-01-20T00:00:00Z")
        assert rows[0]["count"] == 4


class TestRunnerMultipleBreakdownFormulas:
    async def test_multiple_breakdowns_work_with_formula(self, four):
        rows = await four.results(q("2020-01-09", "2020-01-20", trendsFilter={"formula": "A*10"},
                                    breakdownFilter={"breakdowns": [{"property": "$browser", "type": "event"}]}),
                                  now=LATER)
        assert [r["breakdown_value"] for r in rows] == [["Chrome"], ["Firefox"], ["Edge"], ["Safari"]]
        assert [r["data"] for r in rows] == [
            [0, 0, 10, 10, 10, 0, 10, 0, 10, 0, 10, 0],
            [10, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0],
        ]

    async def test_multiple_series_and_multiple_breakdowns_work_with_formula(self, four):
        breakdowns = [{"property": "$browser", "type": "event"},
                      {"property": "prop", "type": "event", "histogram_bin_count": 2}]
        rows = await four.results(q("2020-01-09", "2020-01-20", PV, PV, trendsFilter={"formula": "A/B*100"},
                                    breakdownFilter={"breakdowns": breakdowns}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == [["Chrome", "[10,25]"], ["Firefox", "[10,25]"],
                                                        ["Edge", "[25,40.01]"], ["Safari", "[25,40.01]"]]
        assert [r["data"] for r in rows] == [
            [0, 0, 100, 100, 100, 0, 100, 0, 100, 0, 100, 0],
            [100, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0],
        ]

    @pytest.mark.parametrize("hide_other", [False, True])
    async def test_trends_with_formula_and_multiple_breakdowns_hide_other_breakdowns(self, engine, hide_other):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": f"person_{i}", "timestamp": "2020-01-11T12:00:00Z",
             "properties": {"breakdown_value": str(i)}} for i in range(30)])
        breakdown = {"breakdowns": [{"property": "breakdown_value", "type": "event"}], "breakdown_limit": 10,
                     "breakdown_hide_other_aggregation": hide_other}
        rows = await engine.results(q("2020-01-09", "2020-01-20", PV, PV, trendsFilter={"formula": "A+B"},
                                      breakdownFilter=breakdown), now=LATER)
        values = [v for r in rows for v in r["breakdown_value"]]
        assert (OTHER in values) is not hide_other

    async def test_multiple_formulas_with_compare_to_week(self, four):
        rows = await four.results(q("2020-01-15", "2020-01-19", PV, PL, trendsFilter={"formulas": ["A+B", "A-B"]},
                                    compareFilter={"compare": True, "compare_to": "-1w"}), now=LATER)
        assert [(r["label"], r["compare_label"], r["data"]) for r in rows] == [
            ("Formula (A+B)", "current", [2, 1, 1, 0, 1]), ("Formula (A+B)", "previous", [0, 1, 0, 2, 4]),
            ("Formula (A-B)", "current", [2, -1, 1, 0, 1]), ("Formula (A-B)", "previous", [0, 1, 0, 0, 2])]


class TestRunnerPropertyMathAndFirstMatching:
    async def test_trends_aggregation_total_with_null(self, engine):
        people = [("p1", "2020-01-08", 30, "1.1"), ("p7", "2020-01-15", 30, "1.1"), ("p3", "2020-01-12", 30, "garbage"),
                  ("p4", "2020-01-15", 40, "garbage"), ("p5", "2020-01-09", 40, "garbage")]
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": d, "timestamp": f"{day}T12:00:00Z",
             "properties": {"$browser": "Chrome", "prop": prop, "nullable_prop": value}}
            for d, day, prop, value in people])
        await engine.property_type("nullable_prop", "Numeric")
        series = events("$pageview", math="sum", math_property="nullable_prop")
        rows = await engine.results(q("2020-01-08", "2020-01-15", series,
                                      breakdownFilter={"breakdown": "$browser", "breakdown_type": "event"}), now=LATER)
        assert len(rows) == 1
        assert rows[0]["data"] == pytest.approx([1.1, 0, 0, 0, 0, 0, 0, 1.1])

    async def test_trends_aggregation_property_avg_person_property(self, engine):
        await insert_person(engine.ch, engine.env_id, ["p1"], {"score": 5})
        await insert_events(engine.ch, engine.env_id, [{"event": "$pageview", "distinct_id": "p1",
                                                        "timestamp": "2020-01-11T12:00:00Z", "properties": {"score": 6},
                                                        "person_properties": {"score": 5}}])
        series = events("$pageview", math="avg", math_property="score", math_property_type="person_properties")
        rows = await engine.results(q("2020-01-09", "2020-01-19", series), now=LATER)
        assert rows[0]["count"] == 5.0 and rows[0]["data"] == [0, 0, 5] + [0] * 8

    async def test_trends_aggregation_first_matching_event_for_user(self, engine):
        rows = [{"event": "$pageview", "distinct_id": "p1", "timestamp": "2020-01-06T12:00:00Z",
                 "properties": {"$browser": "Firefox"}}]
        for d in ("p1", "p2"):
            rows += [{"event": "$pageview", "distinct_id": d, "timestamp": f"2020-01-{day}T12:00:00Z",
                      "properties": {"$browser": b}}
                     for day, b in (("08", "Chrome"), ("09", "Chrome"), ("10", "Firefox"), ("11", "Firefox"))]
        await insert_events(engine.ch, engine.env_id, rows)
        series = events("$pageview", math="first_matching_event_for_user",
                        properties=[{"type": "event", "key": "$browser", "operator": "exact", "value": "Firefox"}])
        result = await engine.results(q("2020-01-08", "2020-01-11", series), now=LATER)
        assert result[0]["count"] == 1 and result[0]["data"] == [0, 0, 1, 0]

    async def test_first_matching_event_for_user_with_breakdown_and_filter_being_the_same(self, engine):
        rows = [{"event": "$pageview", "distinct_id": d, "timestamp": f"2020-01-{day}T12:00:00Z",
                 "properties": {"$browser": "Firefox"}}
                for d, day in (("p1", "06"), ("p1", "10"), ("p2", "10"), ("p2", "11"))]
        rows += [{"event": "$pageview", "distinct_id": d, "timestamp": f"2020-01-{day}T12:00:00Z",
                  "properties": {"$browser": "Chrome"}} for d in ("p1", "p2", "p3") for day in ("08", "09")]
        await insert_events(engine.ch, engine.env_id, rows)
        series = events("$pageview", math="first_matching_event_for_user",
                        properties=[{"type": "event", "key": "$browser", "operator": "exact", "value": "Firefox"}])
        breakdown = {"breakdown_type": "event", "breakdown": "$browser"}
        result = await engine.results(q("2020-01-08", "2020-01-11", series, breakdownFilter=breakdown), now=LATER)
        assert [(r["breakdown_value"], r["count"], r["data"]) for r in result] == [("Firefox", 1, [0, 0, 1, 0])]

    async def test_first_matching_event_for_user_with_breakdown_and_filter_being_different(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": f"p{i}", "timestamp": f"2020-01-{day}T12:00:00Z",
             "properties": {"$browser": b, "breakdown_prop": i}}
            for i in (1, 2) for day, b in (("08", "Chrome"), ("10", "Firefox"), ("11", "Firefox"), ("09", "Chrome"))])
        series = events("$pageview", math="first_matching_event_for_user",
                        properties=[{"type": "event", "key": "$browser", "operator": "exact", "value": "Firefox"}])
        result = await engine.results(q("2020-01-08", "2020-01-11", series, breakdownFilter={
            "breakdown_type": "event", "breakdown": "breakdown_prop"}), now=LATER)
        result.sort(key=lambda r: r["breakdown_value"])
        assert [(r["breakdown_value"], r["count"], r["data"]) for r in result] == [
            ("1", 1, [0, 0, 1, 0]), ("2", 1, [0, 0, 1, 0])]


class TestRunnerDates:
    @pytest.mark.parametrize("compare_to", [None, "-7d"])  # test_trends_daily_compare_to_previous_period / _7_days_ago
    async def test_trends_daily_compare_in_pacific_time(self, engine, compare_to):
        from datetime import datetime, timedelta
        from zoneinfo import ZoneInfo

        await engine.configure(timezone="US/Pacific")
        now = datetime(2020, 1, 20, 22, tzinfo=ZoneInfo("US/Pacific"))
        rows = []
        for days_ago in range(15):
            day = now - timedelta(days=days_ago)
            for hours, copies in ((-1, 10 if days_ago == 14 else 1), (1, 10 if days_ago == 0 else 1)):  # 9 / 11 PM
                rows += [{"event": "$pageview", "distinct_id": "test_user", "properties": {"key": "value"},
                          "timestamp": (day + timedelta(hours=hours)).isoformat()}] * copies
        await insert_events(engine.ch, engine.env_id, rows)
        compare = {"compare": True, **({"compare_to": compare_to} if compare_to else {})}
        result = await engine.results(q("-7d", None, compareFilter=compare), now=now.isoformat())
        assert [r["compare_label"] for r in result] == ["current", "previous"]
        current, previous = result[0]["data"], result[1]["data"]
        assert len(current) == len(previous) == 8
        assert current == [2] * 7 + [11]
        assert previous[0] == 11 and previous[1:-1] == [2] * 6
        result = await engine.results(q("-7d", None, compareFilter=compare, trendsFilter={"display": "BoldNumber"}),
                                      now=now.isoformat())
        assert [r["aggregated_value"] for r in result] == [14, 14]

    async def test_trends_all_time(self, four):
        rows = await four.results(q("all", "2020-01-19"), now=LATER)
        assert len(rows) == 1 and "2020-01-09" in rows[0]["days"]

    @pytest.mark.parametrize(("date_from", "buckets", "count"), [
        ("2020-01-14", 1, 2),  # the week began on the 12th, but only the 14th on counts
        ("2020-01-12", 1, 6),
        ("2020-01-10", 2, 7),
    ])
    async def test_week_interval_includes_only_data_after_date_from(self, four, date_from, buckets, count):
        rows = await four.results(q(date_from, "2020-01-16", interval="week"), now=LATER)
        assert len(rows[0]["days"]) == buckets and rows[0]["count"] == count


@pytest.fixture
async def signups(engine):
    """The legacy suite's base data: one person (blabla + anonymous_id) signing up on 2019-12-24,
    three times on 2020-01-01 and once on 2020-01-02, plus one "no events" event."""
    await insert_person(engine.ch, engine.env_id, ["blabla", "anonymous_id"], {"$some_prop": "some_val"})

    def ev(day, props=None, event="sign up", distinct_id="blabla"):
        return {"event": event, "distinct_id": distinct_id, "person": "blabla", "timestamp": f"{day}T00:00:00Z",
                "properties": props or {}, "person_properties": {"$some_prop": "some_val"}}

    await insert_events(engine.ch, engine.env_id, [
        ev("2019-12-24", {"$some_property": "value", "$bool_prop": True}),
        ev("2020-01-01", {"$some_property": "value", "$bool_prop": False}),
        ev("2020-01-01", {"$bool_prop": False}, distinct_id="anonymous_id"),
        ev("2020-01-01"),
        ev("2020-01-02", {"$some_property": "other_value", "$some_numerical_prop": 80}),
        ev("2020-01-02", event="no events"),
    ])
    await engine.property_type("$some_property", "String")
    await engine.property_type("$bool_prop", "Boolean")
    await engine.property_type("$some_numerical_prop", "Numeric")
    return engine


SIGN_UP = events("sign up")


class TestLegacyTrends:
    async def test_trends_per_day(self, signups):
        rows = await signups.results(trends(SIGN_UP, events("no events"), dateRange={"date_from": "-7d"}),
                                     now="2020-01-04T13:00:01Z")
        assert rows[0]["label"] == "sign up"
        assert (rows[0]["labels"][4], rows[0]["data"][4]) == ("1-Jan-2020", 3)
        assert (rows[0]["labels"][5], rows[0]["data"][5]) == ("2-Jan-2020", 1)

    @pytest.mark.parametrize("multiple", [False, True])
    async def test_breakdown_filtering(self, signups, multiple):
        breakdown = ({"breakdowns": [{"property": "$some_property"}]} if multiple
                     else {"breakdown": "$some_property"})
        rows = await signups.results(trends(SIGN_UP, events("no events"), dateRange={"date_from": "-14d"},
                                            breakdownFilter=breakdown), now="2020-01-04T13:01:01Z")
        assert [(r["label"], sum(r["data"])) for r in rows] == [
            ("sign up - value", 2), ("sign up - other_value", 1), (f"sign up - {NULL}", 2),
            (f"no events - {NULL}", 1)]

    async def test_multiple_breakdowns_label_formatting(self, engine):
        def ev(day, browser, variant):
            return {"event": "sign up", "distinct_id": "blabla", "timestamp": f"2020-01-0{day}T00:06:34Z",
                    "properties": {"$some_property": "value", "$browser": browser, "$variant": variant}}

        await insert_events(engine.ch, engine.env_id, [
            ev(1, "Chrome", "1"), ev(1, "Chrome", "2"), ev(1, "Safari", "1"), ev(1, "Safari", "1"),
            ev(1, "Safari", "2"), ev(1, "Safari", ""), ev(2, "Safari", "2"), ev(2, "Safari", "2"), ev(2, "Chrome", ""),
        ])
        breakdowns = [{"property": "$browser"}, {"property": "$variant"}]
        query = trends(SIGN_UP, events("no events"), dateRange={"date_from": "-14d"},
                       breakdownFilter={"breakdowns": breakdowns})
        rows = await engine.results(query, now="2020-01-04T13:00:01Z")
        assert [r["label"] for r in rows] == [
            "sign up - Safari::2", "sign up - Safari::1", "sign up - Chrome::1", "sign up - Chrome::2",
            f"sign up - Chrome::{NULL}", f"sign up - Safari::{NULL}"]
        query["breakdownFilter"]["breakdown_limit"] = 1
        rows = await engine.results(query, now="2020-01-04T13:00:01Z")
        assert [r["label"] for r in rows] == ["sign up - Safari::2", f"sign up - {OTHER}::{OTHER}"]

    @pytest.mark.parametrize("breakdown", [{"breakdown": "email", "breakdown_type": "person"},
                                           {"breakdowns": [{"type": "person", "property": "email"}]}])
    async def test_breakdown_filtering_persons(self, engine, breakdown):
        people = {"person1": {"email": "test@posthog.com"}, "person2": {"email": "test@gmail.com"}, "person3": {}}
        for distinct_id, props in people.items():
            await insert_person(engine.ch, engine.env_id, [distinct_id], props)
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": d, "timestamp": "2020-01-04T12:00:00Z", "properties": {"key": "val"},
             "person_properties": props} for d, props in people.items()])
        rows = await engine.results(trends(SIGN_UP, dateRange={"date_from": "-14d"}, breakdownFilter=breakdown),
                                    now="2020-01-04T13:00:00Z")
        assert [(r["label"], r["count"]) for r in rows] == [("test@gmail.com", 1), ("test@posthog.com", 1), (NULL, 1)]


ZONES = ["UTC", "America/Phoenix", "Asia/Tokyo"]  # the legacy suite's also_test_with_different_timezones


def local(value: str, zone: str) -> str:
    """A wall-clock time in `zone` as an ISO string with its offset."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(zone)).isoformat()


class TestLegacyTimezones:
    @pytest.mark.parametrize("zone", ZONES)
    async def test_timezones_daily(self, engine, zone):
        await engine.configure(timezone=zone)
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "blabla", "timestamp": local(t, zone), "properties": {"$os": "Mac"}}
            for t in ("2020-01-02T17:01:01", "2020-01-03T17:01:01", "2020-01-06T00:30:01")])
        week = ["29-Dec-2019", "30-Dec-2019", "31-Dec-2019", "1-Jan-2020", "2-Jan-2020", "3-Jan-2020", "4-Jan-2020",
                "5-Jan-2020"]
        rows = await engine.results(trends(SIGN_UP, dateRange={"date_from": "-7d"}),
                                    now=local("2020-01-05T05:00:00", zone))
        assert rows[0]["data"] == [0, 0, 0, 0, 1, 1, 0, 0] and rows[0]["labels"] == week
        later = "2020-01-05T13:01:01Z"
        rows = await engine.results(trends(events("sign up", math="dau"), dateRange={"date_from": "-14d"}), now=later)
        assert rows[0]["data"] == [0] * 11 + [1, 1, 0, 0]
        assert rows[0]["labels"][0] == "22-Dec-2019" and rows[0]["labels"][-1] == "5-Jan-2020"
        rows = await engine.results(trends(events("sign up", math="weekly_active"), dateRange={"date_from": "-7d"}),
                                    now=later)
        assert rows[0]["data"] == [0, 0, 0, 0, 1, 1, 1, 1] and rows[0]["labels"] == week
        rows = await engine.results(trends(events("sign up", math="dau"), dateRange={"date_from": "-7d"},
                                           breakdownFilter={"breakdown": "$os"}), now=later)
        assert rows[0]["data"] == [0, 0, 0, 0, 1, 1, 0, 0]

    @pytest.mark.parametrize("zone", ZONES)
    @pytest.mark.parametrize(("week_start_day", "days", "data"), [
        (0, ["2020-01-12", "2020-01-19", "2020-01-26"], [1, 1, 0]),
        (1, ["2020-01-06", "2020-01-13", "2020-01-20"], [1, 0, 1]),  # only events after 2020-01-12 count
    ])
    async def test_timezones_weekly(self, engine, zone, week_start_day, days, data):
        await engine.configure(timezone=zone, week_start_day=week_start_day)
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "blabla", "timestamp": local(t, zone)}
            for t in ("2020-01-11T19:01:01", "2020-01-12T02:01:01", "2020-01-21T18:01:01")])
        rows = await engine.results(trends(SIGN_UP, interval="week", dateRange={"date_from": "-14d"}),
                                    now=local("2020-01-26T03:00:00", zone))
        assert rows[0]["days"] == days and rows[0]["data"] == data

    async def test_non_deterministic_timezones(self, engine):
        await engine.configure(timezone="US/Pacific")
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "blabla", "timestamp": t}
            for t in ("2022-11-03T01:01:01Z", "2022-11-10T01:01:01Z", "2022-11-17T08:30:01Z", "2022-11-24T08:30:01Z",
                      "2022-11-30T08:30:01Z")])
        rows = await engine.results(trends(SIGN_UP, interval="week", dateRange={"date_from": "-30d"}),
                                    now="2022-11-30T13:01:01Z")
        assert rows[0]["data"] == [1, 1, 1, 1, 1]  # no zeros after the DST change on 2022-11-06

    async def test_same_day(self, engine):
        await insert_events(engine.ch, engine.env_id, [{"event": "sign up", "distinct_id": "blabla",
                                                         "timestamp": "2020-01-03T01:01:01Z"}])
        rows = await engine.results(trends(SIGN_UP, dateRange={"date_from": "2020-01-03", "date_to": "2020-01-03"}),
                                    now=LATER)
        assert rows[0]["data"] == [1]


async def _override(engine, distinct_id: str, person_distinct_id: str, version: int) -> None:
    from tests.query_engine.helpers import person_uuid

    await engine.ch.insert("person_distinct_id_overrides", ["team_id", "distinct_id", "person_id", "version"],
                           [[engine.env_id, distinct_id, person_uuid(person_distinct_id, engine.env_id), version]])


SAME_DAY = {"date_from": "2020-01-03", "date_to": "2020-01-03"}


class TestLegacyPersonsOnEvents:
    async def test_same_day_with_person_on_events_v2(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": d, "timestamp": "2020-01-03T01:01:01Z"}
            for d in ("distinctid1", "distinctid2")])
        await _override(engine, "distinctid1", "distinctid2", 1)
        rows = await engine.results(trends(SIGN_UP, dateRange=SAME_DAY), now=LATER)
        assert rows[0]["data"] == [2]
        rows = await engine.results(trends(events("sign up", math="dau"), dateRange=SAME_DAY), now=LATER)
        assert rows[0]["data"] == [1]

    async def test_same_day_with_person_on_events_v2_latest_override(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": event, "distinct_id": d, "timestamp": "2020-01-03T01:01:01Z"}
            for event, d in (("sign up", "distinctid1"), ("some other event", "distinctid2"),
                             ("sign up", "distinctid3"))])
        query = trends(events("sign up", math="dau"), dateRange=SAME_DAY)
        for version, target, expected in ((0, "distinctid2", 2), (1, "distinctid3", 1), (2, "distinctid2", 2)):
            await _override(engine, "distinctid1", target, version)
            rows = await engine.results(query, now=LATER)
            assert rows[0]["data"] == [expected], version


@pytest.fixture
async def viewers(engine):
    """The legacy count-per-actor data: four people (one with two distinct ids) watching videos."""
    people = {"blabla": {"fruit": "mango"}, "tintin": {"fruit": "mango"}, "murmur": {}, "reeree": {"fruit": "tomato"}}
    await insert_person(engine.ch, engine.env_id, ["blabla", "anonymous_id"], people["blabla"])
    for d in ("tintin", "murmur", "reeree"):
        await insert_person(engine.ch, engine.env_id, [d], people[d])

    def ev(t, distinct_id, event="viewed video", **props):
        person = "blabla" if distinct_id == "anonymous_id" else distinct_id
        return {"event": event, "distinct_id": distinct_id, "person": person, "timestamp": t, "properties": props,
                "person_properties": people[person]}

    await insert_events(engine.ch, engine.env_id, [
        ev("2020-01-01T00:06:02Z", "anonymous_id", color="red", **{"$group_0": "bouba"}),
        ev("2020-01-01T00:06:02Z", "blabla", **{"$group_0": "bouba"}),
        ev("2020-01-01T00:06:02Z", "reeree", color="blue", **{"$group_0": "bouba"}),
        ev("2020-01-01T00:06:02Z", "tintin", event="sign up", **{"$group_0": "kiki"}),
        ev("2020-01-03T19:06:34Z", "murmur", event="sign up", **{"$group_0": "kiki"}),
        ev("2020-01-04T23:17:00Z", "tintin", color="red", **{"$group_0": "kiki"}),
        ev("2020-01-05T19:06:34Z", "blabla", color="blue", **{"$group_0": "bouba"}),
        ev("2020-01-05T19:06:34Z", "tintin", color="red"),
        ev("2020-01-05T19:06:34Z", "tintin", color="red", **{"$group_0": "bouba"}),
        ev("2020-01-05T19:06:34Z", "tintin", color="blue", **{"$group_0": "kiki"}),
    ])
    return engine


WEEK = {"date_from": "2020-01-01", "date_to": "2020-01-07"}
JAN_1_TO_7 = [f"2020-01-0{d}" for d in range(1, 8)]


def per_actor(math="avg_count_per_actor"):
    return events("viewed video", math=math)


class TestLegacyCountPerActor:
    async def test_trends_count_per_user_average_daily(self, viewers):
        rows = await viewers.results(trends(per_actor(), dateRange=WEEK), now=LATER)
        assert rows[0]["days"] == JAN_1_TO_7 and rows[0]["data"] == [1.5, 0, 0, 1, 2, 0, 0]

    async def test_trends_count_per_user_average_weekly(self, viewers):
        rows = await viewers.results(trends(per_actor(), dateRange=WEEK, interval="week"), now=LATER)
        assert rows[0]["days"] == ["2019-12-29", "2020-01-05"]
        assert rows[0]["data"] == pytest.approx([4 / 3, 2.0])

    async def test_trends_count_per_user_average_aggregated(self, viewers):
        rows = await viewers.results(trends(per_actor(), dateRange=WEEK, trendsFilter={"display": "ActionsTable"}),
                                     now=LATER)
        assert rows[0]["aggregated_value"] == pytest.approx(8 / 3)  # 8 events over 3 people

    async def test_trends_count_per_user_maximum(self, viewers):
        rows = await viewers.results(trends(per_actor("max_count_per_actor"), dateRange=WEEK), now=LATER)
        assert rows[0]["data"] == [2, 0, 0, 1, 3, 0, 0]

    async def test_trends_count_per_user_average_with_event_property_breakdown(self, viewers):
        rows = await viewers.results(trends(per_actor(), dateRange=WEEK, breakdownFilter={"breakdown": "color"}),
                                     now=LATER)
        assert [r["breakdown_value"] for r in rows] == ["red", "blue", NULL]
        assert all(r["days"] == JAN_1_TO_7 for r in rows)
        assert [r["data"] for r in rows] == [[1, 0, 0, 1, 2, 0, 0], [1, 0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0]]

    async def test_trends_count_per_user_average_with_person_property_breakdown(self, viewers):
        rows = await viewers.results(trends(per_actor(), dateRange=WEEK, breakdownFilter={
            "breakdown": "fruit", "breakdown_type": "person"}), now=LATER)
        assert [r["breakdown_value"] for r in rows] == ["mango", "tomato"]
        assert [r["data"] for r in rows] == [[2, 0, 0, 1, 2, 0, 0], [1, 0, 0, 0, 0, 0, 0]]

    @pytest.mark.parametrize("sampling", [None, 1])  # …_aggregated_with_event_property_breakdown(_with_sampling)
    async def test_trends_count_per_user_average_aggregated_with_event_property_breakdown(self, viewers, sampling):
        rows = await viewers.results(trends(per_actor(), dateRange=WEEK, samplingFactor=sampling,
                                            trendsFilter={"display": "ActionsTable"},
                                            breakdownFilter={"breakdown": "color"}), now=LATER)
        assert [(r["breakdown_value"], r["aggregated_value"]) for r in rows] == [("red", 2), ("blue", 1), (NULL, 1)]


class TestLegacyHourlyAndTotals:
    @pytest.mark.parametrize("zone", ZONES)
    @pytest.mark.parametrize("math", [None, "dau"])
    async def test_timezones_hourly_relative_from(self, engine, zone, math):
        await engine.configure(timezone=zone)
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "blabla", "timestamp": local(t, zone)}
            for t in ("2020-01-04T22:01:01", "2020-01-05T07:01:01", "2020-01-05T08:01:01")])
        series = events("sign up", **({"math": math} if math else {}))
        rows = await engine.results(trends(series, interval="hour", dateRange={"date_from": "dStart"}),
                                    now=local("2020-01-05T10:01:01", zone))
        assert rows[0]["labels"] == [f"5-Jan {h:02d}:00" for h in range(11)]
        assert rows[0]["data"] == [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]

    @pytest.mark.parametrize("zone", ZONES)
    async def test_timezones_hourly_absolute_from(self, engine, zone):
        await engine.configure(timezone=zone)
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "blabla", "timestamp": local(t, zone)}
            for t in ("2020-01-02T17:01:01", "2020-01-03T17:01:01", "2020-01-06T00:30:01")])
        rows = await engine.results(trends(SIGN_UP, interval="hour", dateRange={
            "date_from": "2020-01-03", "date_to": "2020-01-03 23:59:59"}), now=LATER)
        assert rows[0]["days"] == [f"2020-01-03 {h:02d}:00:00" for h in range(24)]
        assert rows[0]["data"][17] == 1 and sum(rows[0]["data"]) == 1
        rows = await engine.results(trends(SIGN_UP, dateRange={"date_from": "2020-01-03", "date_to": "2020-01-03"}),
                                    now=LATER)
        assert rows[0]["data"] == [1]

    async def test_breakdown_filtering_bar_chart_by_value(self, signups):
        rows = await signups.results(trends(SIGN_UP, dateRange={"date_from": "-7d"},
                                            breakdownFilter={"breakdown": "$some_property"},
                                            trendsFilter={"display": "ActionsBarValue"}), now="2020-01-04T13:01:01Z")
        assert [r["aggregated_value"] for r in rows] == [1, 1, 2]  # the last: events without the property
        assert rows[0]["days"] == []


class TestLegacyCohortBreakdowns:
    @pytest.fixture
    async def cohorts(self, engine):
        from tests.query_engine.trends.test_cohorts import add_cohort, add_members

        people = {"p1": {"key": "value"}, "p2": {"key_2": "value_2"}, "p3": {"key_2": "value_2"}}
        for d, props in people.items():
            await insert_person(engine.ch, engine.env_id, [d], props)
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": d, "timestamp": "2020-01-02T12:00:00Z", "properties": {"key": "val"},
             "person_properties": props} for d, props in people.items()])
        first = await add_cohort(engine, "cohort_1", version=1)
        await add_members(engine, first, [("p1", 1, 1)])
        second = await add_cohort(engine, "cohort_2", version=0)
        await add_members(engine, second, [("p2", 0, 1), ("p3", 0, 1)])
        return engine, first, second

    async def test_breakdown_multiple_cohorts(self, cohorts):
        engine, first, second = cohorts
        rows = await engine.results(trends(events("$pageview"), dateRange={"date_from": "-7d"}, breakdownFilter={
            "breakdown": [first, second], "breakdown_type": "cohort"}), now="2020-01-04T13:01:01Z")
        assert [r["count"] for r in rows] == [2, 1]

    async def test_breakdown_single_cohort(self, cohorts):
        engine, first, _ = cohorts
        rows = await engine.results(trends(events("$pageview"), dateRange={"date_from": "-7d"}, breakdownFilter={
            "breakdown": first, "breakdown_type": "cohort"}), now="2020-01-04T13:01:01Z")
        assert rows[0]["count"] == 1


def _blabla(day: int, **props):
    return {"event": "sign up", "distinct_id": "blabla", "timestamp": f"2020-01-0{day}T00:06:34Z", "properties": props}


class TestLegacySingleAggregate:
    async def test_trends_breakdown_single_aggregate(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            _blabla(1, **{"$some_property": "value", "$browser": b}) for b in ("Chrome", "Chrome", "Safari", "Safari",
                                                                               "Safari")
        ] + [_blabla(2, **{"$some_property": "value", "$browser": "Safari"})] * 2)
        rows = await engine.results(trends(SIGN_UP, breakdownFilter={"breakdown": "$browser"},
                                           trendsFilter={"display": "ActionsTable"}), now="2020-01-04T13:00:01Z")
        assert {r["breakdown_value"]: r["aggregated_value"] for r in rows} == {"Chrome": 2, "Safari": 5}

    async def test_trends_multiple_breakdowns_single_aggregate(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            _blabla(1, **{"$browser": b, "$variant": v})
            for b, v in (("Chrome", "1"), ("Chrome", "2"), ("Safari", "1"), ("Safari", "1"), ("Safari", "2"))
        ] + [_blabla(2, **{"$browser": "Safari", "$variant": "2"})] * 2)
        rows = await engine.results(trends(SIGN_UP, trendsFilter={"display": "ActionsTable"}, breakdownFilter={
            "breakdowns": [{"property": "$browser"}, {"property": "$variant"}]}), now="2020-01-04T13:00:01Z")
        assert [(r["breakdown_value"], r["aggregated_value"]) for r in rows] == [
            (["Safari", "2"], 3), (["Safari", "1"], 2), (["Chrome", "1"], 1), (["Chrome", "2"], 1)]

    @pytest.mark.parametrize("breakdown", [{"breakdown": "$some_property"},
                                           {"breakdowns": [{"property": "$some_property"}]}])
    async def test_trends_breakdown_single_aggregate_math(self, engine, breakdown):
        await insert_events(engine.ch, engine.env_id, [
            _blabla(1, **{"$some_property": "value", "$math_prop": n}) for n in (1, 1, 1, 2, 3)
        ] + [_blabla(2, **{"$some_property": "value", "$math_prop": 4})] * 2)
        await engine.property_type("$math_prop", "Numeric")
        series = events("sign up", math="median", math_property="$math_prop")
        values = []
        for interval in ("day", "week"):
            rows = await engine.results(trends(series, interval=interval, breakdownFilter=breakdown,
                                               trendsFilter={"display": "ActionsTable"}), now="2020-01-04T13:00:01Z")
            values.append(rows[0]["aggregated_value"])
        assert values == [2.0, 2.0]


def _sessions_data(with_values: bool):
    """Five sessions of "sign up" (plus other events): s1 5 s, s2 10 s, s3 0 s on Jan 1; s4 15 s and
    s5 5 s on Jan 2. With values: value1 is on s2's second event, s3 and s5; value2 on s1, s2's first
    event and s4."""
    rows = [("sign up before", "blabla", "s1", "2020-01-01 00:06:30", "value1"),
            ("sign up", "blabla", "s1", "2020-01-01 00:06:34", "value2"),
            ("sign up" if with_values else "sign up later", "blabla", "s1", "2020-01-01 00:06:35", "value2"),
            ("sign up", "blabla2", "s2", "2020-01-01 00:06:35", "value2"),
            ("sign up", "blabla2", "s2", "2020-01-01 00:06:45", "value1"),
            ("sign up", "blabla", "s3", "2020-01-01 00:06:45", "value1"),
            ("sign up", "blabla", "s4", "2020-01-02 00:06:30", "value2"),
            ("sign up", "blabla", "s4", "2020-01-02 00:06:45", "value2"),
            ("sign up", "blabla", "s5", "2020-01-02 00:06:40", "value1"),
            ("sign up", "blabla", "s5", "2020-01-02 00:06:45", "value1")]
    return [{"event": event, "distinct_id": d, "timestamp": t.replace(" ", "T") + "Z",
             "properties": {"$session_id": sid, **({"$some_property": value} if with_values else {})}}
            for event, d, sid, t, value in rows]


DEC_28 = ["28-Dec-2019", "29-Dec-2019", "30-Dec-2019", "31-Dec-2019", "1-Jan-2020", "2-Jan-2020", "3-Jan-2020",
          "4-Jan-2020"]
MEDIAN_SESSION = events("sign up", math="median", math_property="$session_duration")


class TestLegacyMathAndSessions:
    async def test_property_filtering(self, signups):
        rows = await signups.results(trends(SIGN_UP, properties=[{"key": "$some_property", "value": "value"}]),
                                     now="2020-01-04T00:00:00Z")
        assert (rows[0]["labels"][4], rows[0]["data"][4]) == ("1-Jan-2020", 1)
        assert (rows[0]["labels"][5], rows[0]["data"][5]) == ("2-Jan-2020", 0)

    async def test_trends_with_hogql_math(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "blabla", "timestamp": t, "properties": {"$session_id": s, "x": x}}
            for t, s, x in (("2020-01-01T00:06:30Z", "s1", 1), ("2020-01-02T00:06:45Z", "s5", 5))])
        await engine.property_type("x", "Numeric")  # upstream registers the numeric property it sends
        series = events("sign up", math="hogql", math_hogql="avg(properties.x) + 1000")
        rows = await engine.results(trends(series, interval="week"), now="2020-01-04T12:01:01Z")
        assert rows[0]["labels"] == ["28-Dec-2019", "29-Dec-2019 – 4-Jan-2020"]
        assert rows[0]["data"] == [0, 1003]

    async def test_trends_with_session_property_total_volume_math(self, engine):
        await insert_events(engine.ch, engine.env_id, _sessions_data(with_values=False))
        rows = await engine.results(trends(MEDIAN_SESSION, interval="week"), now="2020-01-04T13:00:01Z")
        assert rows[0]["labels"] == ["28-Dec-2019", "29-Dec-2019 – 4-Jan-2020"] and rows[0]["data"] == [0, 5]
        rows = await engine.results(trends(MEDIAN_SESSION, interval="day"), now="2020-01-04T13:00:01Z")
        assert rows[0]["labels"] == DEC_28 and rows[0]["data"] == [0, 0, 0, 0, 5, 10, 0, 0]

    @pytest.mark.parametrize("multiple", [False, True])
    async def test_trends_with_session_property_total_volume_math_with_breakdowns(self, engine, multiple):
        await insert_events(engine.ch, engine.env_id, _sessions_data(with_values=True))
        breakdown = ({"breakdowns": [{"property": "$some_property"}]} if multiple
                     else {"breakdown": "$some_property"})
        expected_values = [["value2"], ["value1"]] if multiple else ["value2", "value1"]
        rows = await engine.results(trends(MEDIAN_SESSION, interval="week", breakdownFilter=breakdown),
                                    now="2020-01-04T13:00:01Z")
        assert [r["breakdown_value"] for r in rows] == expected_values
        assert [r["data"] for r in rows] == [[0, 10], [0, 5]]
        rows = await engine.results(trends(MEDIAN_SESSION, interval="day", breakdownFilter=breakdown),
                                    now="2020-01-04T13:00:05Z")
        assert [r["breakdown_value"] for r in rows] == expected_values
        assert [r["data"] for r in rows] == [[0, 0, 0, 0, 7.5, 15, 0, 0], [0, 0, 0, 0, 5, 5, 0, 0]]


class TestLegacyFiltersAndPropertyMath:
    async def test_dau_filtering(self, signups):
        await insert_events(signups.ch, signups.env_id, [{"event": "sign up", "distinct_id": "someone_else",
                                                           "timestamp": "2020-01-02T00:00:00Z"}])
        rows = await signups.results(trends(events("sign up", math="dau")), now="2020-01-04T00:00:00Z")
        assert rows[0]["data"][4] == 1 and rows[0]["data"][5] == 2

    @pytest.mark.parametrize(("math", "values", "expected"), [
        ("sum", [2, 3, 5.5, 7.5], 18), ("avg", [2, 3, 5.5, 7.5], 4.5), ("min", [2, 3, 5.5, 7.5], 2),
        ("max", [2, 3, 5.5, 7.5], 7.5), ("median", range(101, 201), 150), ("p75", range(101, 201), 175),
        ("p90", range(101, 201), 190), ("p95", range(101, 201), 195), ("p99", range(101, 201), 199),
    ])
    async def test_math_property_aggregation(self, engine, math, values, expected):  # test_<math>_filtering
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "someone_else", "timestamp": "2020-01-04T10:00:00Z",
             "properties": {"some_number": v}} for v in [*values, None]])
        await engine.property_type("some_number", "Numeric")
        rows = await engine.results(trends(events("sign up", math=math, math_property="some_number")),
                                    now="2020-01-04T12:00:00Z")
        assert rows[0]["data"][-1] == pytest.approx(expected, abs=0.5)

    async def test_avg_filtering_non_number_resiliency(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "someone_else", "timestamp": "2020-01-04T10:00:00Z",
             "properties": {"some_number": v}} for v in (2, "x", None, 8)])
        await engine.property_type("some_number", "Numeric")
        rows = await engine.results(trends(events("sign up", math="avg", math_property="some_number")),
                                    now="2020-01-04T12:00:00Z")
        assert rows[0]["data"][-1] == 5

    async def test_per_entity_filtering(self, signups):
        rows = await signups.results(trends(
            events("sign up", properties=[{"key": "$some_property", "value": "value"}]),
            events("sign up", properties=[{"key": "$some_property", "value": "other_value"}]),
            dateRange={"date_from": "-7d"}), now="2020-01-04T13:00:01Z")
        assert (rows[0]["labels"][4], rows[0]["data"][4], rows[0]["count"]) == ("1-Jan-2020", 1, 1)
        assert (rows[1]["labels"][5], rows[1]["data"][5], rows[1]["count"]) == ("2-Jan-2020", 1, 1)


@pytest.fixture
async def moviegoers(engine):
    """Four people (name person1…4) watching movies on Jan 1–5; each event also has its own `name`."""
    journeys = {"person1": [(1, "1", "1")], "person2": [(1, "1", "2"), (2, "2", "2"), (2, "2", "2")],
                "person3": [(1, "1", "3"), (2, "2", "3"), (3, "2", "3")], "person4": [(5, "1", "4")]}
    rows = []
    for person, journey in journeys.items():
        await insert_person(engine.ch, engine.env_id, [person], {"name": person})
        rows += [{"event": "watched movie", "distinct_id": person, "timestamp": f"2020-01-0{day}T12:00:00Z",
                  "properties": {"order": order, "name": name}, "person_properties": {"name": person}}
                 for day, order, name in journey]
    await insert_events(engine.ch, engine.env_id, rows)
    await engine.property_type("order", "String")
    await engine.property_type("name", "String")
    return engine


POE_MODES = ["disabled", "person_id_no_override_properties_on_events", "person_id_override_properties_on_events",
             "person_id_override_properties_joined"]


class TestLegacyPersonFilters:
    @pytest.mark.parametrize("mode", POE_MODES)
    @pytest.mark.parametrize("where", ["global", "series"])  # test_person_property_filtering / test_entity_…
    async def test_person_property_filtering(self, moviegoers, mode, where):
        flt = [{"key": "name", "value": "person1", "type": "person"}]
        series = events("watched movie", **({"properties": flt} if where == "series" else {}))
        query = trends(series, modifiers={"personsOnEventsMode": mode},
                       **({"properties": flt} if where == "global" else {}))
        rows = await moviegoers.results(query, now="2020-01-04T00:00:00Z")
        assert (rows[0]["labels"][4], rows[0]["data"][4]) == ("1-Jan-2020", 1)
        assert (rows[0]["labels"][5], rows[0]["data"][5]) == ("2-Jan-2020", 0)

    async def test_person_property_filtering_clashing_with_event_property(self, moviegoers):
        for flt in ({"key": "name", "value": "person1", "type": "person"},
                    {"key": "name", "value": "1", "type": "event"}):
            rows = await moviegoers.results(trends(events("watched movie"), properties=[flt]),
                                            now="2020-01-04T00:00:00Z")
            assert rows[0]["data"][4] == 1 and rows[0]["data"][5] == 0

    @pytest.mark.parametrize("breakdown", [{"breakdown": "order"}, {"breakdowns": [{"property": "order"}]}])
    async def test_breakdown_with_person_property_filter(self, moviegoers, breakdown):
        series = events("watched movie", properties=[{"key": "name", "value": "person2", "type": "person"}])
        rows = await moviegoers.results(trends(series, dateRange={"date_from": "-14d"}, breakdownFilter=breakdown),
                                        now="2020-01-04T13:01:01Z")
        values = [["2"], ["1"]] if "breakdowns" in breakdown else ["2", "1"]
        assert [(r["count"], r["breakdown_value"]) for r in rows] == list(zip([2, 1], values))


CUMULATIVE = {"display": "ActionsLineGraphCumulative"}


class TestLegacyCumulativeAndGroups:
    async def test_trends_per_day_48hours(self, signups):
        rows = await signups.results(trends(SIGN_UP, events("no events"), dateRange={"date_from": "-48h"}),
                                     now="2020-01-03T13:00:01Z")
        assert (rows[0]["labels"][1], rows[0]["data"][1]) == ("2-Jan-2020", 1)

    async def test_trends_per_day_cumulative(self, signups):
        rows = await signups.results(trends(SIGN_UP, dateRange={"date_from": "-7d"}, trendsFilter=CUMULATIVE),
                                     now="2020-01-04T13:00:01Z")
        assert rows[0]["label"] == "sign up"
        assert (rows[0]["labels"][4], rows[0]["data"][4]) == ("1-Jan-2020", 3)
        assert (rows[0]["labels"][5], rows[0]["data"][5]) == ("2-Jan-2020", 4)

    async def test_trends_per_day_dau_cumulative(self, signups):
        await insert_events(signups.ch, signups.env_id, [{"event": "sign up", "distinct_id": "new_user",
                                                           "timestamp": "2020-01-03T13:00:01Z"}])
        rows = await signups.results(trends(events("sign up", math="dau"), dateRange={"date_from": "-7d"},
                                            trendsFilter=CUMULATIVE), now="2020-01-04T13:00:01Z")
        assert rows[0]["data"][4:7] == [1, 1, 2]

    @pytest.mark.parametrize(("display", "data"), [
        ("ActionsLineGraph", [0, 0, 1, 0, 0, 1, 2, 0]),  # test_trends_groups_per_day
        ("ActionsLineGraphCumulative", [0, 0, 1, 1, 1, 2, 2, 2]),  # test_trends_groups_per_day_cumulative
    ])
    async def test_trends_groups_per_day(self, viewers, display, data):
        series = events("viewed video", math="unique_group", math_group_type_index=0)
        rows = await viewers.results(trends(series, dateRange={"date_from": "-7d"}, trendsFilter={"display": display}),
                                     now="2020-01-06T13:00:01Z")
        assert rows[0]["labels"][-1] == "6-Jan-2020" and rows[0]["data"] == data

    async def test_trends_breakdown_cumulative(self, signups):
        rows = await signups.results(trends(events("sign up", math="dau"), dateRange={"date_from": "-7d"},
                                            trendsFilter=CUMULATIVE, breakdownFilter={"breakdown": "$some_property"}),
                                     now="2020-01-04T13:00:01Z")
        assert [(r["label"], r["data"]) for r in rows] == [
            ("value", [0, 0, 0, 0, 1, 1, 1, 1]), ("other_value", [0, 0, 0, 0, 0, 1, 1, 1]),
            (NULL, [0, 0, 0, 0, 1, 1, 1, 1])]

    async def test_trends_breakdown_normalize_url(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": "blabla", "timestamp": "2020-01-02T00:00:00Z",
             "properties": {"$current_url": url}}
            for url in ("http://hogflix/first", "http://hogflix/first/", "http://hogflix/second")])
        rows = await engine.results(trends(events("sign up", math="dau"), dateRange={"date_from": "-7d"},
                                           trendsFilter=CUMULATIVE, breakdownFilter={
                                               "breakdown": "$current_url", "breakdown_normalize_url": True}),
                                    now="2020-01-04T13:00:01Z")
        assert sorted(r["label"] for r in rows) == ["http://hogflix/first", "http://hogflix/second"]
        assert sorted(r["breakdown_value"] for r in rows) == ["http://hogflix/first", "http://hogflix/second"]

    async def test_trends_single_aggregate_dau(self, signups):
        values = []
        for interval in ("week", "day"):
            rows = await signups.results(trends(events("sign up", math="dau"), interval=interval,
                                                trendsFilter={"display": "ActionsTable"}), now="2020-01-04T13:00:01Z")
            values.append(rows[0]["aggregated_value"])
        assert values == [1, 1]


@pytest.fixture
async def org_groups(engine):
    for index, key, industry in ((0, "org:5", "finance"), (0, "org:6", "technology"), (0, "org:7", "finance"),
                                 (1, "company:10", "finance")):
        await insert_group(engine.ch, engine.env_id, index, key, {"industry": industry})
    return engine


def _signed_up(distinct_id, second, key, group0, **extra):
    return {"event": "sign up", "distinct_id": distinct_id, "timestamp": f"2020-01-02T12:00:0{second}Z",
            "properties": {"key": key, "$group_0": group0, **extra}}


FINANCE = [{"key": "industry", "value": "finance", "type": "group", "group_type_index": 0}]


class TestLegacyGroupBreakdowns:
    async def test_trends_breakdown_timezone(self, viewers):
        await viewers.configure(timezone="US/Pacific")
        await insert_events(viewers.ch, viewers.env_id, [{"event": "viewed video", "distinct_id": "another_user",
                                                           "timestamp": "2020-01-03T19:06:34Z",
                                                           "properties": {"color": "orange"}}])
        rows = await viewers.results(trends(events("viewed video", math="dau"), interval="month",
                                            dateRange={"date_from": "2020-01-01", "date_to": "2020-03-07"},
                                            breakdownFilter={"breakdown": "color"}), now="2020-03-10T00:00:00Z")
        assert all(r["days"] == ["2020-01-01", "2020-02-01", "2020-03-01"] for r in rows[:3])

    async def test_breakdown_with_filter_groups(self, org_groups):
        await insert_events(org_groups.ch, org_groups.env_id, [
            _signed_up("person1", 0, "oh", "org:7", **{"$group_1": "company:10"}),
            _signed_up("person1", 1, "uh", "org:5"), _signed_up("person1", 2, "uh", "org:6")])
        rows = await org_groups.results(trends(SIGN_UP, properties=FINANCE, breakdownFilter={"breakdown": "key"},
                                               dateRange={"date_from": "2020-01-01T00:00:00Z",
                                                          "date_to": "2020-01-12T00:00:00Z"}), now=LATER)
        assert [(r["breakdown_value"], r["count"]) for r in rows] == [("oh", 1), ("uh", 1)]

    async def test_breakdown_with_filter_groups_person_on_events_v2(self, org_groups):
        await insert_events(org_groups.ch, org_groups.env_id, [
            _signed_up("test_breakdown_d1", 0, "oh", "org:7", **{"$group_1": "company:10"}),
            _signed_up("test_breakdown_d1", 1, "uh", "org:5"), _signed_up("test_breakdown_d1", 2, "uh", "org:6"),
            _signed_up("test_breakdown_d2", 2, "uh", "org:6")])
        await _override(org_groups, "test_breakdown_d1", "test_breakdown_d2", 1)
        rows = await org_groups.results(trends(events("sign up", math="dau"), properties=FINANCE,
                                               breakdownFilter={"breakdown": "key"},
                                               dateRange={"date_from": "2020-01-01T00:00:00Z",
                                                          "date_to": "2020-01-12T00:00:00Z"}), now=LATER)
        assert [(r["breakdown_value"], r["count"]) for r in rows] == [("oh", 1), ("uh", 1)]

    async def test_breakdown_by_group_props(self, org_groups):
        await insert_events(org_groups.ch, org_groups.env_id, [
            {"event": "sign up", "distinct_id": "person1", "timestamp": f"2020-01-02T{h}:00:00Z", "properties": props}
            for h, props in (("12", {"$group_0": "org:5"}), ("13", {"$group_0": "org:6"}),
                             ("15", {"$group_0": "org:7", "$group_1": "company:10"}))])
        rows = await org_groups.results(trends(SIGN_UP, dateRange={"date_from": "2020-01-01T00:00:00Z",
                                                                   "date_to": "2020-01-12"},
                                               breakdownFilter={"breakdown": "industry", "breakdown_type": "group",
                                                                "breakdown_group_type_index": 0}), now=LATER)
        assert [(r["breakdown_value"], r["count"]) for r in rows] == [("finance", 2), ("technology", 1)]


def _nov(days):
    return [f"2020-11-{d:02d}" for d in days]


# (upstream test, event times, query fields, clock, count, data, labels, days)
DATE_CASES = [
    ("test_week_interval", ["2020-11-01", "2020-11-10", "2020-11-11", "2020-11-18"],
     {"interval": "week", "dateRange": {"date_from": "2020-10-29", "date_to": "2020-11-24"}}, LATER, 4,
     [0, 1, 2, 1, 0], ["29–31 Oct", "1–7 Nov", "8–14 Nov", "15–21 Nov", "22–24 Nov"],
     ["2020-10-25", *_nov([1, 8, 15, 22])]),
    ("test_month_interval", ["2020-07-10", "2020-07-30", "2020-10-18"],
     {"interval": "month", "dateRange": {"date_from": "2020-6-01", "date_to": "2020-11-24"}}, LATER, 3,
     [0, 2, 0, 0, 1, 0], ["Jun 2020", "Jul 2020", "Aug 2020", "Sep 2020", "Oct 2020", "Nov 2020"],
     [f"2020-{m:02d}-01" for m in range(6, 12)]),
    ("test_interval_rounding", ["2020-11-01", "2020-11-10", "2020-11-11", "2020-11-18"],
     {"interval": "week", "dateRange": {"date_from": "2020-11-04", "date_to": "2020-11-24"}}, LATER, 3,
     [0, 2, 1, 0], ["4–7 Nov", "8–14 Nov", "15–21 Nov", "22–24 Nov"], _nov([1, 8, 15, 22])),
    ("test_interval_rounding_monthly", ["2020-06-02", "2020-07-30"],
     {"interval": "month", "dateRange": {"date_from": "2020-6-7", "date_to": "2020-7-30"}}, LATER, 2,
     [1, 1], ["Jun 2020", "Jul 2020"], ["2020-06-01", "2020-07-01"]),
    ("test_today_timerange", ["2020-11-01 10:20:00", "2020-11-01 10:22:00", "2020-11-01 10:25:00"],
     {"dateRange": {"date_from": "dStart"}}, "2020-11-01T10:20:00Z", 3, [3], ["1-Nov-2020"], _nov([1])),
    ("test_yesterday_timerange", ["2020-11-01 05:20:00", "2020-11-01 10:22:00", "2020-11-01 10:25:00"],
     {"dateRange": {"date_from": "-1d", "date_to": "-1d"}}, "2020-11-02T10:20:00Z", 3, [3], ["1-Nov-2020"],
     _nov([1])),
    ("test_last24hours_timerange",
     ["2020-11-01 05:20:00", "2020-11-01 10:22:00", "2020-11-01 10:25:00", "2020-11-02 08:25:00"],
     {"dateRange": {"date_from": "-24h"}}, "2020-11-02T10:20:00Z", 3, [2, 1], ["1-Nov-2020", "2-Nov-2020"],
     _nov([1, 2])),
    ("test_last48hours_timerange",
     ["2020-11-01 05:20:00", "2020-11-01 10:22:00", "2020-11-01 10:25:00", "2020-11-02 08:25:00"],
     {"dateRange": {"date_from": "-48h"}}, "2020-11-02T10:20:00Z", 4, [0, 3, 1],
     ["31-Oct-2020", "1-Nov-2020", "2-Nov-2020"], ["2020-10-31", *_nov([1, 2])]),
    ("test_last7days_timerange",
     ["2020-11-01 05:20:00", "2020-11-02 10:22:00", "2020-11-04 10:25:00", "2020-11-05 08:25:00"],
     {"dateRange": {"date_from": "-7d"}}, "2020-11-07T10:20:00Z", 4, [0, 1, 1, 0, 1, 1, 0, 0],
     ["31-Oct-2020", *[f"{d}-Nov-2020" for d in range(1, 8)]], ["2020-10-31", *_nov(range(1, 8))]),
    ("test_last14days_timerange",
     ["2020-11-01 05:20:00", "2020-11-02 10:22:00", "2020-11-04 10:25:00", "2020-11-05 08:25:00",
      "2020-11-05 08:25:00", "2020-11-10 08:25:00"],
     {"dateRange": {"date_from": "-14d"}}, "2020-11-14T10:20:00Z", 6, [0, 1, 1, 0, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0],
     ["31-Oct-2020", *[f"{d}-Nov-2020" for d in range(1, 15)]], ["2020-10-31", *_nov(range(1, 15))]),
    ("test_last30days_timerange",
     ["2020-11-01 05:20:00", "2020-11-11 10:22:00", "2020-11-24 10:25:00", "2020-11-05 08:25:00",
      "2020-11-05 08:25:00", "2020-11-10 08:25:00"],
     {"interval": "week", "dateRange": {"date_from": "-30d"}}, "2020-11-30T10:20:00Z", 6, [0, 3, 2, 0, 1, 0],
     ["31-Oct-2020", "1–7 Nov", "8–14 Nov", "15–21 Nov", "22–28 Nov", "29–30 Nov"],
     ["2020-10-25", *_nov([1, 8, 15, 22, 29])]),
    ("test_last90days_timerange",
     ["2020-09-01 05:20:00", "2020-10-05 05:20:00", "2020-10-20 05:20:00", "2020-11-01 05:20:00",
      "2020-11-11 10:22:00", "2020-11-24 10:25:00", "2020-11-05 08:25:00", "2020-11-05 08:25:00",
      "2020-11-10 08:25:00"],
     {"interval": "month", "dateRange": {"date_from": "-90d"}}, "2020-11-30T10:20:00Z", 9, [1, 2, 6],
     ["Sep 2020", "Oct 2020", "Nov 2020"], ["2020-09-01", "2020-10-01", "2020-11-01"]),
    ("test_this_month_timerange",
     ["2020-11-01 05:20:00", "2020-11-11 10:22:00", "2020-11-24 10:25:00", "2020-11-05 08:25:00",
      "2020-11-05 08:25:00", "2020-11-10 08:25:00"],
     {"interval": "month", "dateRange": {"date_from": "mStart"}}, "2020-11-30T10:20:00Z", 6, [6], ["Nov 2020"],
     _nov([1])),
    ("test_previous_month_timerange",
     ["2020-11-01 05:20:00", "2020-11-11 10:22:00", "2020-11-24 10:25:00", "2020-11-05 08:25:00",
      "2020-11-05 08:25:00", "2020-11-10 08:25:00"],
     {"interval": "month", "dateRange": {"date_from": "-1mStart", "date_to": "-1mEnd"}}, "2020-12-30T10:20:00Z", 6,
     [6], ["Nov 2020"], _nov([1])),
    ("test_year_to_date_timerange",
     ["2020-01-01 05:20:00", "2020-01-11 10:22:00", "2020-02-24 10:25:00", "2020-02-05 08:25:00",
      "2020-03-05 08:25:00", "2020-05-10 08:25:00"],
     {"interval": "month", "dateRange": {"date_from": "yStart"}}, "2020-04-30T10:20:00Z", 5, [2, 2, 1, 0],
     ["Jan 2020", "Feb 2020", "Mar 2020", "Apr 2020"], ["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01"]),
    ("test_all_time_timerange",
     ["2020-01-01 05:20:00", "2020-01-11 10:22:00", "2020-02-24 10:25:00", "2020-02-05 08:25:00",
      "2020-03-05 08:25:00"],
     {"interval": "month", "dateRange": {"date_from": "all"}}, "2020-04-30T10:20:00Z", 5, [2, 2, 1, 0],
     ["Jan 2020", "Feb 2020", "Mar 2020", "Apr 2020"], ["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01"]),
    ("test_custom_range_timerange",
     ["2020-01-05 05:20:00", "2020-01-05 10:22:00", "2020-01-04 10:25:00", "2020-01-11 08:25:00",
      "2020-01-09 08:25:00"],
     {"dateRange": {"date_from": "2020-01-05"}}, "2020-01-10T00:00:00Z", 3, [2, 0, 0, 0, 1, 0],
     [f"{d}-Jan-2020" for d in range(5, 11)], [f"2020-01-{d:02d}" for d in range(5, 11)]),
]


class TestLegacyDateRanges:
    @pytest.mark.parametrize(("name", "times", "fields", "now", "count", "data", "labels", "days"), DATE_CASES,
                             ids=[c[0] for c in DATE_CASES])
    async def test_events_with_dates(self, engine, name, times, fields, now, count, data, labels, days):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "event_name", "distinct_id": "person_1", "properties": {"$browser": "Safari"},
             "timestamp": (t.replace(" ", "T") if " " in t else f"{t}T00:00:00") + "Z"} for t in times])
        rows = await engine.results(trends(events("event_name"), **fields), now=now)
        assert (rows[0]["count"], rows[0]["data"], rows[0]["labels"], rows[0]["days"]) == (count, data, labels, days)

    async def test_trends_compare_day_interval_relative_range(self, signups):
        rows = await signups.results(trends(SIGN_UP, dateRange={"date_from": "-7d"}, compareFilter={"compare": True}),
                                     now="2020-01-04T13:00:01Z")
        assert rows[0]["days"] == ["2019-12-28", "2019-12-29", "2019-12-30", "2019-12-31", "2020-01-01",
                                   "2020-01-02", "2020-01-03", "2020-01-04"]
        assert rows[0]["data"][4:6] == [3, 1]
        assert rows[1]["days"] == [f"2019-12-{d}" for d in range(21, 29)]  # the 28th again: weekdays align
        assert (rows[1]["labels"][3], rows[1]["data"][3]) == ("24-Dec-2019", 1)
        assert (rows[1]["labels"][4], rows[1]["data"][4]) == ("25-Dec-2019", 0)
        rows = await signups.results(trends(SIGN_UP, compareFilter={"compare": False}), now="2020-01-04T13:00:01Z")
        assert rows[0]["data"][4:6] == [3, 1] and "compare" not in rows[0]

    async def test_trends_compare_day_interval_fixed_range_single(self, engine):
        await _timed_signups(engine)
        rows = await engine.results(trends(SIGN_UP, dateRange={"date_from": "2020-01-02"},
                                           compareFilter={"compare": True}), now="2020-01-02T20:17:00Z")
        assert (rows[0]["days"], rows[0]["data"]) == (["2020-01-02"], [1])
        assert (rows[1]["days"], rows[1]["data"]) == (["2020-01-01"], [3])

    async def test_trends_compare_hour_interval_relative_range(self, engine):
        await _timed_signups(engine)
        rows = await engine.results(trends(SIGN_UP, interval="hour", dateRange={"date_from": "dStart"},
                                           compareFilter={"compare": True}), now="2020-01-02T20:17:00Z")
        assert rows[0]["days"] == [f"2020-01-02 {h:02d}:00:00" for h in range(21)]
        assert rows[0]["data"] == [0] * 16 + [1, 0, 0, 0, 0]
        assert rows[1]["days"] == [f"2020-01-01 {h:02d}:00:00" for h in range(21)]
        assert rows[1]["data"] == [3] + [0] * 20


async def _timed_signups(engine):
    """The legacy base data with times of day: 2019-12-24 03:45, three on 2020-01-01 00:06, one 2020-01-02 16:34."""
    await insert_events(engine.ch, engine.env_id, [
        {"event": "sign up", "distinct_id": d, "timestamp": t}
        for d, t in (("blabla", "2019-12-24T03:45:34Z"), ("blabla", "2020-01-01T00:06:34Z"),
                     ("anonymous_id", "2020-01-01T00:06:34Z"), ("blabla", "2020-01-01T00:06:34Z"),
                     ("blabla", "2020-01-02T16:34:34Z"))])


def _four_sessions():
    """s1 5 s (blabla, value1), s2 10 s (blabla2: value2 then value1), s3 1 s (blabla, no value) on Jan 1;
    s4 15 s (blabla: value2, value2, value1) on Jan 2."""
    rows = [("sign up before", "blabla", "s1", "2020-01-01T00:06:30", "value1"),
            ("sign up", "blabla", "s1", "2020-01-01T00:06:34", "value1"),
            ("sign up later", "blabla", "s1", "2020-01-01T00:06:35", "value doesnt matter"),
            ("sign up", "blabla2", "s2", "2020-01-01T00:06:35", "value2"),
            ("sign up", "blabla2", "s2", "2020-01-01T00:06:45", "value1"),
            ("sign up", "blabla", "s3", "2020-01-01T00:06:45", None),
            ("sign up", "blabla", "s3", "2020-01-01T00:06:46", None),
            ("sign up", "blabla", "s4", "2020-01-02T00:06:30", "value2"),
            ("sign up", "blabla", "s4", "2020-01-02T00:06:35", "value2"),
            ("sign up", "blabla", "s4", "2020-01-02T00:06:45", "value1")]
    props = {"blabla": {"$some_prop": "some_val"}, "blabla2": {"$some_prop": "another_val"}}
    return [{"event": e, "distinct_id": d, "timestamp": t + "Z", "person_properties": props[d],
             "properties": {"$session_id": s, **({"$some_property": v} if v else {})}} for e, d, s, t, v in rows]


class TestLegacySessionAggregates:
    @pytest.mark.parametrize("multiple", [False, True])
    async def test_trends_breakdown_with_session_property_single_aggregate_math_and_breakdown(self, engine, multiple):
        await insert_events(engine.ch, engine.env_id, _four_sessions())
        breakdown = ({"breakdowns": [{"property": "$some_property"}]} if multiple
                     else {"breakdown": "$some_property"})
        results = []
        for interval, now in (("week", "2020-01-04T13:00:33Z"), ("day", "2020-01-04T13:00:01Z")):
            rows = await engine.results(trends(MEDIAN_SESSION, interval=interval, breakdownFilter=breakdown,
                                               trendsFilter={"display": "ActionsTable"}), now=now)
            results.append([(r["breakdown_value"], r["aggregated_value"]) for r in rows])
        values = [["value2"], ["value1"], [NULL]] if multiple else ["value2", "value1", NULL]
        assert results[0] == results[1] == list(zip(values, [12.5, 10, 1]))

    @pytest.mark.parametrize("multiple", [False, True])
    async def test_trends_person_breakdown_with_session_property_single_aggregate_math_and_breakdown(
            self, engine, multiple):
        await insert_events(engine.ch, engine.env_id, _four_sessions())
        breakdown = ({"breakdowns": [{"type": "person", "property": "$some_prop"}]} if multiple
                     else {"breakdown": "$some_prop", "breakdown_type": "person"})
        rows = await engine.results(trends(MEDIAN_SESSION, interval="week", breakdownFilter=breakdown,
                                           trendsFilter={"display": "ActionsTable"}), now="2020-01-04T13:00:01Z")
        values = {(tuple(r["breakdown_value"]) if multiple else r["breakdown_value"]): r["aggregated_value"]
                  for r in rows}
        key = (lambda v: (v,)) if multiple else (lambda v: v)
        assert values == {key("another_val"): 10.0, key("some_val"): 5.0}

    async def test_trends_any_event_total_count(self, signups):
        all_events = await signups.results(trends(events(None)), now="2020-01-04T13:00:01Z")
        sign_ups = await signups.results(trends(SIGN_UP), now="2020-01-04T13:00:01Z")
        assert (all_events[0]["count"], sign_ups[0]["count"]) == (5, 4)

    @pytest.mark.parametrize("multiple", [False, True])
    async def test_trends_breakdown_with_math_func(self, engine, multiple):
        rows = [{"event": "sign up", "distinct_id": f"person{i}", "timestamp": "2020-01-01T00:06:34Z",
                 "properties": {"$some_property": f"value_{i}", "$math_prop": 1}} for i in range(20) for _ in range(2)]
        rows.append({"event": "sign up", "distinct_id": "person21", "timestamp": "2020-01-01T00:06:34Z",
                     "properties": {"$some_property": "value_21", "$math_prop": 25}})
        await insert_events(engine.ch, engine.env_id, rows)
        await engine.property_type("$math_prop", "Numeric")
        breakdown = {"breakdowns": [{"property": "$some_property"}]} if multiple else {"breakdown": "$some_property"}
        result = await engine.results(trends(events("sign up", math="p90", math_property="$math_prop"),
                                             breakdownFilter=breakdown, trendsFilter={"display": "ActionsTable"}),
                                      now="2020-01-04T13:00:01Z")
        assert (["value_21"] if multiple else "value_21") in [r["breakdown_value"] for r in result]


JAN_2024 = {"date_from": "2024-01-01", "date_to": "2024-01-15"}


class TestBreakdownEmptyNullProperties:
    async def test_breakdown_with_null_empty_and_missing_properties(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "test_event", "distinct_id": d, "timestamp": "2024-01-10T12:00:00Z", "properties": props}
            for d, props in (("user_with_null", {"test_property": None}),
                             ("user_with_empty_string", {"test_property": ""}),
                             ("user_with_missing", {"some_other_property": "value"}),
                             ("user_with_value", {"test_property": "actual_value"}))])
        rows = await engine.results(trends(events("test_event"), dateRange=JAN_2024,
                                           breakdownFilter={"breakdown": "test_property", "breakdown_type": "event"}),
                                    now="2024-01-15T12:00:00Z")
        assert {r["breakdown_value"]: r["count"] for r in rows} == {NULL: 3, "actual_value": 1}

    async def test_multiple_breakdown_with_null_empty_and_missing_properties(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "test_event", "distinct_id": d, "timestamp": "2024-01-10T12:00:00Z", "properties": props}
            for d, props in (("user_none_none", {}), ("user_value_none", {"prop1": "value1"}),
                             ("user_none_value", {"prop2": "value2"}))])
        rows = await engine.results(trends(events("test_event"), dateRange=JAN_2024,
                                           breakdownFilter={"breakdowns": [{"property": "prop1", "type": "event"},
                                                                           {"property": "prop2", "type": "event"}]}),
                                    now="2024-01-15T12:00:00Z")
        assert [r["count"] for r in rows if r["breakdown_value"] == [NULL, NULL]] == [1]


@pytest.fixture
async def sessions_xyz(engine):
    """The formula suite's data: one person (blabla, $some_prop some_val) in one long session s1 (group
    org:5): "session start" xyz 200/300 (Paris) and 400 (London) on Jan 2 13:01, 400 and 500 (London)
    on Jan 3, and three "session end" on Jan 3 (London 500, Belo Horizonte 500, empty location 400)."""
    from tests.query_engine.trends.test_cohorts import add_cohort, add_members

    await insert_person(engine.ch, engine.env_id, ["blabla", "anonymous_id"], {"$some_prop": "some_val"})
    await insert_group(engine.ch, engine.env_id, 0, "org:5", {"industry": "finance"})
    rows = [("2020-01-02T13:01:01Z", "session start", 200, "Paris", {"$current_url": "http://example.org"}),
            ("2020-01-02T13:01:01Z", "session start", 300, "Paris", {}),
            ("2020-01-02T13:01:01Z", "session start", 400, "London", {}),
            ("2020-01-03T13:01:01Z", "session start", 400, "London", {}),
            ("2020-01-03T13:04:01Z", "session start", 500, "London", {}),
            ("2020-01-03T13:04:01Z", "session end", 500, "London", {}),
            ("2020-01-03T13:04:01Z", "session end", 500, "Belo Horizonte", {}),
            ("2020-01-03T13:04:01Z", "session end", 400, "", {})]
    await insert_events(engine.ch, engine.env_id, [
        {"event": event, "distinct_id": "blabla", "timestamp": t, "person_properties": {"$some_prop": "some_val"},
         "properties": {"xyz": xyz, "location": location, "$session_id": "s1", "$group_0": "org:5", **extra}}
        for t, event, xyz, location, extra in rows])
    engine.cohort = await add_cohort(engine, "cohort1", version=0)
    await add_members(engine, engine.cohort, [("blabla", 0, 1)])
    return engine


SUM_XYZ = events("session start", math="sum", math_property="xyz")
AVG_XYZ = events("session start", math="avg", math_property="xyz")
FORMULA_NOW = "2020-01-04T13:01:01Z"


async def formula_run(engine, now=FORMULA_NOW, **fields):
    fields.setdefault("series", [SUM_XYZ, AVG_XYZ])
    fields.setdefault("trendsFilter", {"formula": "A + B"})
    return await engine.results({"kind": "TrendsQuery", **fields}, now=now)


ZERO5 = [0.0] * 5


class TestFormulaSuite:
    @pytest.mark.parametrize(("date_from", "interval", "expected"), [
        ("-24h", "hour", [1200] + [0] * 23 + [1350]),  # test_hour_interval_hour_level_relative
        ("-1d", "hour", [0] * 13 + [1200] + [0] * 23 + [1350]),  # test_hour_interval_day_level_relative
        ("-3d", "day", [0, 0, 1200, 1350]),  # test_day_interval
        ("-2w", "week", [0, 0, 2160]),  # test_week_interval
        ("-2m", "month", [0, 0, 2160]),  # test_month_interval
    ])
    async def test_intervals(self, sessions_xyz, date_from, interval, expected):
        rows = await formula_run(sessions_xyz, now="2020-01-03T13:05:01Z", interval=interval,
                                 dateRange={"date_from": date_from})
        assert rows[0]["data"] == expected

    @pytest.mark.parametrize(("formula", "jan2", "jan3"), [
        ("A - B", 600, 450), ("A * B", 270000, 405000), ("A / B", 3, 2), ("(A/3600)/B", 1 / 1200, 1 / 1800),
        ("A/0", 0, 0)])
    async def test_formula(self, sessions_xyz, formula, jan2, jan3):
        rows = await formula_run(sessions_xyz, trendsFilter={"formula": formula})
        assert rows[0]["data"] == pytest.approx(ZERO5 + [jan2, jan3, 0])
        assert rows[0]["count"] == pytest.approx(jan2 + jan3)

    @pytest.mark.parametrize(("series", "formula"), [
        ([events("session start", math="unique_session"), events("session start", math="dau")], "A / B"),
        ([events("session start", math="unique_session", properties=[
            {"key": "$session_duration", "value": 12, "operator": "gt", "type": "session"}]),
          events("session start", math="unique_session")], "A / B"),
        ([events("$autocapture", math="unique_session", properties=[
            {"key": "$session_duration", "type": "session", "value": 30, "operator": "lt"}]),
          events("session start", math="unique_session", properties=[
              {"key": "$session_duration", "type": "session", "value": 500, "operator": "gt"}])], "B"),
    ], ids=["test_formula_with_unique_sessions", "test_regression_formula_with_unique_sessions_2x_and_duration_filter",
            "test_regression_formula_with_unique_sessions_2x_and_duration_filter_2x"])
    async def test_session_ratios(self, sessions_xyz, series, formula):
        rows = await formula_run(sessions_xyz, series=series, trendsFilter={"formula": formula})
        assert rows[0]["data"] == ZERO5 + [1, 1, 0]

    async def test_regression_formula_with_session_duration_aggregation(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, trendsFilter={"formula": "A / B"}, series=[
            events("session start", math="avg", math_property="$session_duration"), events("session end")])
        assert rows[0]["data"] == ZERO5 + [0, 28860, 0]  # the session lasts 86580 s; 3 session ends on Jan 3

    @pytest.mark.parametrize("series_a", [
        events("session error", math="sum", math_property="session not here"),  # test_aggregated_one_without_events
        events("nonexistent_event_that_has_no_data", math="hogql",  # test_formula_with_hogql_math_no_matching_events
               math_hogql="sum(toFloat(properties.xyz))"),
    ])
    async def test_aggregated_one_without_events(self, sessions_xyz, series_a):
        rows = await formula_run(sessions_xyz, series=[series_a, SUM_XYZ],
                                 trendsFilter={"display": "BoldNumber", "formula": "A + B"})
        assert rows[0]["aggregated_value"] == 1800 and rows[0]["label"] == "Formula (A + B)"

    async def test_breakdown(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, trendsFilter={"formula": "A - B"},
                                 breakdownFilter={"breakdown": "location"})
        assert [(r["breakdown_value"], r["label"], r["data"]) for r in rows] == [
            ("London", "Formula (A - B)", ZERO5 + [0, 450, 0]), ("Paris", "Formula (A - B)", ZERO5 + [250, 0, 0])]

    async def test_breakdown_aggregated(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, trendsFilter={"formula": "A - B", "display": "ActionsPie"},
                                 breakdownFilter={"breakdown": "location"})
        assert [(r["breakdown_value"], r["label"]) for r in rows] == [("London", "Formula (A - B)"),
                                                                      ("Paris", "Formula (A - B)")]
        assert [r["aggregated_value"] for r in rows] == pytest.approx([866.6666666666667, 250])

    async def test_breakdown_with_different_breakdown_values_per_series(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, series=[SUM_XYZ, events("session end", math="sum", math_property="xyz")],
                                 breakdownFilter={"breakdown": "location"})
        assert [(r["breakdown_value"], r["data"]) for r in rows] == [
            ("London", ZERO5 + [400, 1400, 0]), ("Paris", ZERO5 + [500, 0, 0]),
            ("Belo Horizonte", ZERO5 + [0, 500, 0]), (NULL, ZERO5 + [0, 400, 0])]
        assert all(r["label"] == "Formula (A + B)" for r in rows)

    async def test_breakdown_counts_of_different_events_one_without_events(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, series=[events("session start"), events("session error")],
                                 trendsFilter={"display": "ActionsLineGraph", "formula": "B / A"},
                                 breakdownFilter={"breakdown": "location", "breakdown_type": "event"})
        labels = ["28-Dec-2019", "29-Dec-2019", "30-Dec-2019", "31-Dec-2019", "1-Jan-2020", "2-Jan-2020", "3-Jan-2020",
                  "4-Jan-2020"]
        days = ["2019-12-28", "2019-12-29", "2019-12-30", "2019-12-31", "2020-01-01", "2020-01-02", "2020-01-03",
                "2020-01-04"]
        assert [r["breakdown_value"] for r in rows] == ["Paris", "London"]
        for row in rows:
            assert (row["data"], row["count"], row["labels"], row["days"]) == ([0] * 8, 0, labels, days)
            assert (row["label"], row["action"], row["order"]) == ("Formula (B / A)", None, 0)

    async def test_breakdown_cohort(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, breakdownFilter={"breakdown": ["all", sessions_xyz.cohort],
                                                                "breakdown_type": "cohort"})
        assert [(r["breakdown_value"], r["label"], r["data"]) for r in rows] == [
            ("all", "Formula (A + B)", ZERO5 + [1200, 1350, 0]),
            (sessions_xyz.cohort, "Formula (A + B)", ZERO5 + [1200, 1350, 0])]

    async def test_breakdown_hogql(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, breakdownFilter={
            "breakdown": "concat(person.properties.$some_prop, ' : ', properties.location)", "breakdown_type": "hogql"})
        assert [(r["breakdown_value"], r["data"]) for r in rows] == [
            ("some_val : London", ZERO5 + [800, 1350, 0]), ("some_val : Paris", ZERO5 + [750, 0, 0])]

    async def test_breakdown_mismatching_sizes(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, series=[events("session start"), events("session end")],
                                 breakdownFilter={"breakdown": "location"})
        assert [(r["breakdown_value"], r["data"]) for r in rows] == [
            ("London", ZERO5 + [1, 3, 0]), ("Paris", ZERO5 + [2, 0, 0]), ("Belo Horizonte", ZERO5 + [0, 1, 0]),
            (NULL, ZERO5 + [0, 1, 0])]

    @pytest.mark.parametrize(("fields", "expected"), [
        ({"properties": [{"key": "$current_url", "value": "http://example.org"}]}, [400, 0]),  # test_global_properties
        ({"properties": [{"key": "$current_url", "value": "http://localhost:8000/insights?insight=TRENDS&interval=day"
                          "&events=%5B%7B%22id%22%3A%22%24pageview%22%7D%5D"}]}, [0, 0]),  # …_with_escape_params
        ({"series": [events("session start", math="sum", math_property="xyz",  # test_event_properties
                            properties=[{"key": "$current_url", "value": "http://example.org"}]), AVG_XYZ]},
         [500, 450]),
        ({"series": [SUM_XYZ, AVG_XYZ, AVG_XYZ]}, [1200, 1350]),  # test_multiple_events
        ({"series": [events("session start", math="unique_session")] * 2}, [2, 2]),  # test_session_formulas
        ({"series": [events("session start", math="unique_group", math_group_type_index=0)] * 2}, [2, 2]),
    ], ids=["global_properties", "escape_params", "event_properties", "multiple_events", "session_formulas",
            "group_formulas"])
    async def test_series_variants(self, sessions_xyz, fields, expected):
        rows = await formula_run(sessions_xyz, **fields)
        assert rows[0]["data"] == ZERO5 + expected + [0]

    async def test_compare(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, dateRange={"date_from": "-1dStart"}, compareFilter={"compare": True})
        assert (rows[0]["days"], rows[0]["data"]) == (["2020-01-03", "2020-01-04"], [1350, 0])
        assert (rows[1]["days"], rows[1]["data"]) == (["2020-01-01", "2020-01-02"], [0, 1200])

    async def test_aggregated(self, sessions_xyz):
        rows = await formula_run(sessions_xyz, trendsFilter={"display": "ActionsPie", "formula": "A + B"})
        assert rows[0]["aggregated_value"] == 2160

    async def test_cumulative(self, sessions_xyz):
        rows = await formula_run(sessions_xyz,
                                 trendsFilter={"display": "ActionsLineGraphCumulative", "formula": "A + B"})
        assert len(rows) == 1 and rows[0]["data"] == ZERO5 + [1200, 2550, 2550]
        assert rows[0]["days"][0] == "2019-12-28" and rows[0]["days"][-1] == "2020-01-04"

    async def test_formula_referencing_missing_series_returns_error(self, sessions_xyz):
        from app.errors import QueryError

        with pytest.raises(QueryError):
            await formula_run(sessions_xyz, series=[SUM_XYZ], trendsFilter={"formula": "A/B"})


DAY = 24 * 60 * 60


class TestLegacyIntervals:
    async def test_session_property_math_with_sessions_spanning_multiple_intervals(self, engine):
        # test_trends_with_session_property_total_volume_math_with_sessions_spanning_multiple_intervals
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": d, "timestamp": t, "properties": {"$session_id": s}}
            for d, s, t in (("blabla", "s1", "2020-01-01T00:06:30Z"), ("blabla", "s1", "2020-01-02T00:06:34Z"),
                            ("blabla", "s1", "2020-01-03T00:06:30Z"), ("blabla2", "s2", "2020-01-01T00:06:35Z"),
                            ("blabla2", "s2", "2020-01-05T00:06:35Z"))])
        rows = await engine.results(trends(MEDIAN_SESSION), now="2020-01-06T13:00:01Z")
        assert rows[0]["labels"][0] == "30-Dec-2019" and rows[0]["labels"][-1] == "6-Jan-2020"
        # a session's duration counts only in the buckets where it has a matching event
        assert rows[0]["data"] == [0, 0, 3 * DAY, 2 * DAY, 2 * DAY, 0, 4 * DAY, 0]

    async def test_filter_events_by_cohort(self, engine):
        from tests.query_engine.trends.test_cohorts import add_cohort, add_members

        await insert_events(engine.ch, engine.env_id, [
            {"event": "event_name", "distinct_id": d, "timestamp": "2020-01-04T10:00:00Z",
             "properties": {"$browser": b}}
            for d, b in (("person_1", "Safari"), ("person_2", "Chrome"), ("person_2", "Safari"))])
        cohort = await add_cohort(engine, "cohort1", version=0)
        await add_members(engine, cohort, [("person_2", 0, 1)])
        rows = await engine.results(trends(events("event_name"), properties=[{"key": "id", "value": cohort,
                                                                                "type": "cohort"}]),
                                    now="2020-01-04T12:00:00Z")
        assert rows[0]["count"] == 2 and rows[0]["data"][-1] == 2

    async def test_interval_filtering_hour(self, engine):
        await _timed_signups(engine)
        rows = await engine.results(trends(SIGN_UP, interval="hour", dateRange={"date_from": "2019-12-24"}),
                                    now="2020-01-02T00:00:00Z")
        assert (rows[0]["labels"][3], rows[0]["data"][3]) == ("24-Dec 03:00", 1)
        assert rows[0]["data"][192] == 3

    async def test_interval_filtering_week(self, engine):
        await _timed_signups(engine)
        rows = await engine.results(trends(SIGN_UP, interval="week", dateRange={"date_from": "2019-11-24"}),
                                    now="2020-01-02T00:00:00Z")
        assert rows[0]["labels"][:5] == ["24–30 Nov", "1–7 Dec", "8–14 Dec", "15–21 Dec", "22–28 Dec"]
        assert rows[0]["data"][:5] == [0, 0, 0, 0, 1]

    async def test_interval_filtering_month(self, engine):
        await _timed_signups(engine)
        rows = await engine.results(trends(SIGN_UP, interval="month", dateRange={"date_from": "2019-9-24"}),
                                    now="2020-01-02T00:00:00Z")
        assert [(rows[0]["labels"][i], rows[0]["data"][i]) for i in (0, 3, 4)] == [
            ("Sep 2019", 0), ("Dec 2019", 1), ("Jan 2020", 4)]

    async def test_interval_filtering_today_hourly(self, engine):
        await _timed_signups(engine)
        await insert_events(engine.ch, engine.env_id, [{"event": "sign up", "distinct_id": "blabla",
                                                         "timestamp": "2020-01-02T23:30:00Z"}])
        rows = await engine.results(trends(SIGN_UP, interval="hour", dateRange={"date_from": "dStart"}),
                                    now="2020-01-02T23:31:00Z")
        assert (rows[0]["labels"][23], rows[0]["data"][23]) == ("2-Jan 23:00", 1)

    async def test_breakdown_with_filter(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": d, "timestamp": "2020-01-04T10:00:00Z", "properties": {"key": k}}
            for d, k in (("person1", "val"), ("person2", "oh"))])
        rows = await engine.results(trends(SIGN_UP, dateRange={"date_from": "-14d"}, breakdownFilter={"breakdown": "key"},
                                           properties=[{"key": "key", "value": "oh", "operator": "not_icontains"}]),
                                    now="2020-01-04T12:00:00Z")
        assert [r["breakdown_value"] for r in rows] == ["val"]

    async def test_trends_for_non_existing_event(self, engine):  # test_trends_for_non_existing_action, events half
        rows = await engine.results(trends(events("DNE")), now="2020-01-04T00:00:00Z")
        assert rows[0]["data"] == [0] * 8


class TestLegacyFilterCombinations:
    @pytest.mark.parametrize("breakdown", [{"breakdown": "$some_property"},
                                           {"breakdowns": [{"property": "$some_property"}]}])
    async def test_breakdown_filtering_with_prop_filter(self, signups, breakdown):
        await insert_events(signups.ch, signups.env_id, [{
            "event": "sign up", "distinct_id": "blabla", "timestamp": "2020-01-02T13:01:01Z",
            "properties": {"$some_property": "other_value", "$os": "Windows"}}])
        rows = await signups.results(trends(events("sign up", math="dau"), breakdownFilter=breakdown,
                                            properties=[{"key": "$os", "value": "Windows"}]),
                                     now="2020-01-04T13:01:01Z")
        assert rows[0]["label"] == "other_value"
        assert sum(rows[0]["data"]) == 1 and rows[0]["data"][5] == 1

    @pytest.mark.parametrize("breakdown", [{"breakdown": "$some_prop", "breakdown_type": "person"},
                                           {"breakdowns": [{"property": "$some_prop", "type": "person"}]}])
    async def test_against_clashing_entity_and_property_filter_naming(self, engine, breakdown):
        await insert_person(engine.ch, engine.env_id, ["blabla", "anonymous_id"], {"$some_prop": "some_val"})
        await insert_events(engine.ch, engine.env_id, [{
            "event": "$pageview", "distinct_id": "blabla", "timestamp": "2020-01-03T12:00:00Z",
            "properties": {"$host": "app.example.com"}, "person_properties": {"$some_prop": "some_val"}}])
        series = events("$pageview", properties=[{"key": "$host", "operator": "icontains", "value": ".com"}])
        rows = await engine.results(trends(series, breakdownFilter=breakdown,
                                           properties=[{"key": "$host", "value": ["app.example.com", "another.com"]}]),
                                    now="2020-01-04T13:01:01Z")
        assert rows[0]["count"] == 1

    async def test_breakdown_user_props_with_filter(self, engine):
        from tests.query_engine.helpers import person_uuid

        await insert_person(engine.ch, engine.env_id, ["person1"], {"email": "test@posthog.com"})
        await insert_person(engine.ch, engine.env_id, ["person2"], {"email": "test@gmail.com"})
        await insert_person(engine.ch, engine.env_id, ["person3"], {"email": "test@gmail.com"})
        # person1's distinct id now belongs to person3
        await engine.ch.insert("person_distinct_id2", ["team_id", "distinct_id", "person_id", "version"],
                               [[engine.env_id, "person1", person_uuid("person3", engine.env_id), 1]])
        await insert_events(engine.ch, engine.env_id, [
            {"event": "sign up", "distinct_id": d, "timestamp": "2020-01-04T10:00:00Z", "properties": {"key": "val"}}
            for d in ("person1", "person2")])
        query = trends(SIGN_UP, dateRange={"date_from": "-14d"},
                       breakdownFilter={"breakdown": "email", "breakdown_type": "person"},
                       properties=[{"key": "email", "value": "@posthog.com", "operator": "not_icontains",
                                    "type": "person"}, {"key": "key", "value": "val"}],
                       modifiers={"personsOnEventsMode": "disabled"})
        rows = await engine.results(query, now="2020-01-04T12:00:00Z")
        assert [r["breakdown_value"] for r in rows] == ["test@gmail.com"]

"""Breakdowns (§7): ranking, limits, sentinels, histogram bins, URL normalisation, multiple
breakdowns and breakdowns under other math, executed on chDB."""

from __future__ import annotations

import pytest

from app.errors import QueryError
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events, insert_group

NOW = "2020-01-12T12:00:00Z"
RANGE = {"date_from": "2020-01-10", "date_to": "2020-01-12"}
NULL = "$$_posthog_breakdown_null_$$"
OTHER = "$$_posthog_breakdown_other_$$"


def ev(distinct_id, day=11, **props):
    return {"event": "e", "distinct_id": distinct_id, "timestamp": f"2020-01-{day}T10:00:00Z", "properties": props}


@pytest.fixture
async def data(engine):
    await insert_events(engine.ch, engine.env_id, [
        ev("a", b="Chrome", url="https://x.com/a/", n=1), ev("a", b="Chrome", url="https://x.com/a", n=2),
        ev("b", day=10, b="Chrome", url="https://x.com/a?#", n=3),
        ev("c", b="Safari", n=10), ev("d", b="Safari", n=4),
        ev("e", b="Firefox"), ev("f"), ev("g", b=""), ev("h", b="Zed"),
    ])
    return engine


async def rows(engine, breakdown_filter, *, series=None, **query):
    q = trends(*(series or [events("e")]), dateRange=RANGE, breakdownFilter=breakdown_filter, **query)
    response = await engine.query(q, now=NOW)
    return response["results"], response["hasMore"]


class TestEventBreakdown:
    async def test_order_and_values(self, data):
        result, has_more = await rows(data, {"breakdown": "b"})
        assert [r["breakdown_value"] for r in result] == ["Chrome", "Safari", "Firefox", "Zed", NULL]
        assert [r["count"] for r in result] == [3, 2, 1, 1, 2]
        assert result[0]["data"] == [1, 2, 0] and result[0]["label"] == "Chrome"
        assert has_more is False

    async def test_limit_folds_into_other(self, data):
        result, has_more = await rows(data, {"breakdown": "b", "breakdown_limit": 2})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("Chrome", 3), ("Safari", 2), (OTHER, 4)]
        assert has_more is True

    async def test_hide_other(self, data):
        result, has_more = await rows(data, {"breakdown": "b", "breakdown_limit": 2,
                                             "breakdown_hide_other_aggregation": True})
        assert [r["breakdown_value"] for r in result] == ["Chrome", "Safari"] and has_more is True

    async def test_null_takes_a_slot(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 5})
        assert result[-1]["breakdown_value"] == NULL
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 4})
        assert [r["breakdown_value"] for r in result][-2:] == ["Zed", OTHER]

    async def test_normalize_url(self, data):
        result, _ = await rows(data, {"breakdown": "url", "breakdown_normalize_url": True})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("https://x.com/a", 3), (NULL, 6)]

    async def test_numeric_values_as_text(self, data):
        result, _ = await rows(data, {"breakdown": "n", "breakdown_limit": 2})
        assert [r["breakdown_value"] for r in result] == ["1", "10", OTHER]

    async def test_multiple_series_prefix_labels(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 1},
                               series=[events("e"), events("e", math="dau")])
        assert [r["label"] for r in result] == ["e - Chrome", f"e - {OTHER}", "e - Chrome", f"e - {OTHER}"]
        assert [r["count"] for r in result] == [3, 6, 2, 6]

    async def test_total_value(self, data):
        result, _ = await rows(data, {"breakdown": "b"}, trendsFilter={"display": "ActionsPie"})
        assert [(r["breakdown_value"], r["aggregated_value"]) for r in result][:2] == [("Chrome", 3), ("Safari", 2)]
        assert all(r["data"] == [] and r["count"] == 0 for r in result)

    async def test_no_events_gives_no_rows(self, engine):
        result, _ = await rows(engine, {"breakdown": "b"})
        assert result == []


class TestHistogram:
    async def test_bins(self, data):
        result, _ = await rows(data, {"breakdown": "n", "breakdown_histogram_bin_count": 3})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [
            ("[1,4]", 3), ("[4,7]", 1), ("[7,10.01]", 1), (NULL, 4)]  # ties sort by text

    async def test_single_value(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("a", n=4), ev("b", n=4)])
        result, _ = await rows(engine, {"breakdown": "n", "breakdown_histogram_bin_count": 2})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("[4,4.01]", 2)]


class TestOtherSources:
    async def test_person_breakdown(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "person_properties": {"plan": "pro"}},
            {"event": "e", "distinct_id": "b", "timestamp": "2020-01-11T10:00:00Z"},
        ])
        result, _ = await rows(engine, {"breakdown": "plan", "breakdown_type": "person"})
        assert [r["breakdown_value"] for r in result] == ["pro", NULL]

    async def test_group_breakdown(self, engine):
        await insert_group(engine.ch, engine.env_id, 0, "acme", {"industry": "tech"})
        await insert_events(engine.ch, engine.env_id, [ev("a", **{"$group_0": "acme"}), ev("b")])
        result, _ = await rows(engine, {"breakdown": "industry", "breakdown_type": "group",
                                        "breakdown_group_type_index": 0})
        assert [r["breakdown_value"] for r in result] == ["tech", NULL]

    async def test_group_breakdown_needs_index(self, data):
        with pytest.raises(QueryError) as exc:
            await rows(data, {"breakdown": "industry", "breakdown_type": "group"})
        assert exc.value.attr == "query.breakdownFilter.breakdown_group_type_index"

    async def test_event_metadata(self, data):
        result, _ = await rows(data, {"breakdown": "distinct_id", "breakdown_type": "event_metadata",
                                      "breakdown_limit": 1})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("a", 2), (OTHER, 7)]

    @pytest.mark.parametrize("btype", ["session", "data_warehouse"])  # hogql: tests/hogql/; cohort: test_cohorts.py
    async def test_unsupported_is_400(self, data, btype):
        with pytest.raises(QueryError) as exc:
            await rows(data, {"breakdown": "x", "breakdown_type": btype})
        assert "not supported" in exc.value.detail


class TestMultiple:
    async def test_two_properties(self, data):
        result, _ = await rows(data, {"breakdowns": [{"property": "b"}, {"property": "n", "histogram_bin_count": 1}],
                                      "breakdown_limit": 3})
        assert [r["breakdown_value"] for r in result] == [
            ["Chrome", "[1,10.01]"], ["Safari", "[1,10.01]"], [NULL, NULL], [OTHER, OTHER]]
        assert result[0]["label"] == "Chrome::[1,10.01]"


class TestWithMath:
    async def test_dau(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 1}, series=[events("e", math="dau")])
        assert [(r["breakdown_value"], r["data"]) for r in result] == [("Chrome", [1, 1, 0]), (OTHER, [0, 6, 0])]

    async def test_weekly_active(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 1},
                               series=[events("e", math="weekly_active")])
        assert result[0]["breakdown_value"] == "Chrome" and result[0]["data"] == [1, 2, 2]

    async def test_first_time_uses_first_event_value(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("a", day=10, b="Chrome"), ev("a", day=11, b="Safari")])
        result, _ = await rows(engine, {"breakdown": "b"}, series=[events("e", math="first_time_for_user")])
        assert [(r["breakdown_value"], r["data"]) for r in result] == [("Chrome", [1, 0, 0])]

    async def test_property_math(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 1},
                               series=[events("e", math="sum", math_property="n")])
        assert result[0]["breakdown_value"] == "Safari" and result[0]["count"] == 14

"""Compare (§8), formulas (§9), total-value displays, cumulative, smoothing and sampling (§10)."""

from __future__ import annotations

import pytest

from app.errors import QueryError
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events

NOW = "2020-01-19T12:00:00Z"
RANGE = {"date_from": "2020-01-15", "date_to": "2020-01-19"}


def ev(day, distinct_id="a", event="a", **props):
    return {"event": event, "distinct_id": distinct_id, "timestamp": f"2020-01-{day:02d}T10:00:00Z",
            "properties": props}


@pytest.fixture
async def data(engine):
    await insert_events(engine.ch, engine.env_id, [
        ev(10), ev(12), ev(12, "b"), ev(15), ev(15, "b"), ev(15, "c"), ev(17), ev(19, "b"),
        ev(15, event="b"), ev(16, event="b"), ev(17, event="b"), ev(17, event="b"),
    ])
    return engine


class TestCompare:
    async def test_previous_period(self, data):
        result = await data.results(trends(events("a"), dateRange=RANGE, compareFilter={"compare": True}), now=NOW)
        assert [(r["compare_label"], r["data"]) for r in result] == [
            ("current", [3, 0, 1, 0, 1]), ("previous", [1, 0, 2, 0, 0])]
        assert result[1]["days"][0] == "2020-01-10" and all(r["compare"] is True for r in result)

    async def test_compare_to(self, data):
        result = await data.results(trends(events("a"), dateRange=RANGE,
                                           compareFilter={"compare": True, "compare_to": "-3d"}), now=NOW)
        assert result[1]["days"] == ["2020-01-12", "2020-01-13", "2020-01-14", "2020-01-15", "2020-01-16"]
        assert result[1]["data"] == [2, 0, 0, 3, 0]

    async def test_compare_total_value(self, data):
        result = await data.results(trends(events("a", math="dau"), dateRange=RANGE, compareFilter={"compare": True},
                                           trendsFilter={"display": "BoldNumber"}), now=NOW)
        assert [r["aggregated_value"] for r in result] == [3, 2]


class TestFormulas:
    async def test_ratio_and_division_by_zero(self, data):
        q = trends(events("a"), events("b"), dateRange=RANGE, trendsFilter={"formula": "B/A"})
        result = await data.results(q, now=NOW)
        assert len(result) == 1
        row = result[0]
        assert row["data"] == pytest.approx([1 / 3, 0, 2, 0, 0])
        assert row["label"] == "Formula (B/A)" and row["action"] is None

    async def test_formula_nodes(self, data):
        q = trends(events("a"), events("b"), dateRange=RANGE, trendsFilter={"formulaNodes": [
            {"formula": "a + b * 2"}, {"formula": "(A - B) ** 2 % 5", "custom_name": "odd"}]})
        result = await data.results(q, now=NOW)
        assert result[0]["data"] == [5, 2, 5, 0, 1] and result[0]["order"] == 0
        assert result[1]["label"] == "odd" and result[1]["data"] == [4, 1, 1, 0, 1] and result[1]["order"] == 1

    async def test_formula_with_compare(self, data):
        q = trends(events("a"), events("b"), dateRange=RANGE, trendsFilter={"formula": "A+B"},
                   compareFilter={"compare": True})
        result = await data.results(q, now=NOW)
        assert [(r["compare_label"], r["data"]) for r in result] == [
            ("current", [4, 1, 3, 0, 1]), ("previous", [1, 0, 2, 0, 0])]

    async def test_formula_with_breakdown(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            ev(15, event="a", b="x"), ev(15, event="a", b="y"), ev(15, event="b", b="y"), ev(16, event="b", b="z"),
        ])
        q = trends(events("a"), events("b"), dateRange=RANGE, trendsFilter={"formula": "A+B"},
                   breakdownFilter={"breakdown": "b"})
        result = await engine.results(q, now=NOW)
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("y", 2), ("x", 1), ("z", 1)]

    async def test_legacy_formulas_list_path(self, data):
        with pytest.raises(QueryError) as exc:
            await data.results(trends(events("a"), dateRange=RANGE, trendsFilter={"formulas": ["A", "B"]}), now=NOW)
        assert exc.value.attr == "query.trendsFilter.formulas[1]"

    async def test_total_value_formula(self, data):
        q = trends(events("a"), events("b"), dateRange=RANGE, trendsFilter={"formula": "A/B", "display": "BoldNumber"})
        result = await data.results(q, now=NOW)
        assert result[0]["aggregated_value"] == pytest.approx(5 / 4)

    @pytest.mark.parametrize("formula", ["A/C", "import os", "A.__class__", "A(1)", "'x'", "A if B else 1"])
    async def test_invalid_formula_is_400(self, data, formula):
        with pytest.raises(QueryError) as exc:
            await data.results(trends(events("a"), events("b"), dateRange=RANGE, trendsFilter={"formula": formula}),
                               now=NOW)
        assert exc.value.attr == "query.trendsFilter.formula"


class TestDisplays:
    async def test_cumulative(self, data):
        q = trends(events("a"), dateRange=RANGE, trendsFilter={"display": "ActionsLineGraphCumulative"})
        row = (await data.results(q, now=NOW))[0]
        assert row["data"] == [3, 3, 4, 4, 5] and row["count"] == 5

    async def test_cumulative_dau_counts_each_actor_once(self, data):
        q = trends(events("a", math="dau"), dateRange=RANGE, trendsFilter={"display": "ActionsLineGraphCumulative"})
        row = (await data.results(q, now=NOW))[0]
        assert row["data"] == [3, 3, 3, 3, 3]

    async def test_smoothing(self, engine):
        raw = [1, 0, 1, 3, 1, 0, 2, 0, 1, 0, 1, 0]
        await insert_events(engine.ch, engine.env_id, [ev(day + 1) for day, n in enumerate(raw) for _ in range(n)])
        q = trends(events("a"), dateRange={"date_from": "2020-01-01", "date_to": "2020-01-12"},
                   trendsFilter={"smoothingIntervals": 7})
        row = (await engine.results(q, now=NOW))[0]
        assert row["data"] == [1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0] and row["count"] == 8

    @pytest.mark.parametrize("display", ["BoldNumber", "ActionsPie", "ActionsBarValue", "ActionsTable", "WorldMap"])
    async def test_total_value(self, data, display):
        q = trends(events("a", math="dau"), dateRange=RANGE, interval="hour", trendsFilter={"display": display})
        row = (await data.results(q, now=NOW))[0]
        assert row["aggregated_value"] == 3 and row["data"] == [] and row["count"] == 0

    async def test_empty_series(self, data):
        assert await data.results(trends(dateRange=RANGE), now=NOW) == []

    async def test_insight_viz_node(self, data):
        q = {"kind": "InsightVizNode", "source": trends(events("a"), dateRange=RANGE), "showHeader": True}
        assert (await data.results(q, now=NOW))[0]["count"] == 5

    async def test_date_from_all(self, data):
        row = (await data.results(trends(events("a"), dateRange={"date_from": "all"}), now=NOW))[0]
        assert row["days"][0] == "2020-01-10" and row["count"] == 8


class TestSampling:
    async def test_sample_scales_counts(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev(15, f"user{i}") for i in range(200)])
        response = await engine.query(trends(events("a"), dateRange=RANGE, samplingFactor=0.5), now=NOW)
        assert "SAMPLE 1/2" in response["hogql"]
        sampled = await engine.ch.execute(
            "SELECT count() FROM events SAMPLE 1/2 WHERE team_id = {t:Int64}", {"t": engine.env_id})
        assert response["results"][0]["data"][0] == round(sampled.rows[0][0] / 0.5)

    async def test_averages_are_not_scaled(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev(15, f"user{i}", n=4) for i in range(50)])
        response = await engine.query(trends(events("a", math="avg", math_property="n"), dateRange=RANGE,
                                             samplingFactor=0.5), now=NOW)
        assert response["results"][0]["data"][0] in (0, 4)

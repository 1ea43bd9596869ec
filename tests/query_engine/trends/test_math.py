"""Execution tests of the series math of §4 on chDB with a frozen clock."""

from __future__ import annotations

import pytest

from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events, insert_group

NOW = "2020-01-12T12:00:00Z"
RANGE = {"date_from": "2020-01-06", "date_to": "2020-01-12"}


def ev(day: int, distinct_id: str, event: str = "$pageview", hour: int = 10, **props):
    return {"event": event, "distinct_id": distinct_id, "timestamp": f"2020-01-{day:02d}T{hour:02d}:00:00Z",
            "properties": props}


@pytest.fixture
async def data(engine):
    await insert_events(engine.ch, engine.env_id, [
        ev(6, "u1", n=1, **{"$session_id": "s1"}), ev(6, "u1", n=3, **{"$session_id": "s1"}),
        ev(6, "u2", n=10, **{"$session_id": "s2"}),
        ev(8, "u1", n="7"), ev(8, "u3", n="x"),
        ev(12, "u2", n=2.5, **{"$group_0": "org1"}), ev(12, "u2", n=4, **{"$group_0": "org2"}),
        ev(12, "u4", **{"$group_0": "org1"}),
        ev(9, "u1", event="other"),
        {"event": "$pageview", "distinct_id": "u1", "timestamp": "2020-01-05T23:59:59Z"},
        {"event": "$pageview", "distinct_id": "u1", "timestamp": "2020-01-12T23:59:59.5Z"},
    ])
    return engine


async def run(engine, **series):
    rows = await engine.results(trends(events(**series), dateRange=RANGE), now=NOW)
    assert len(rows) == 1
    return rows[0]


class TestSimpleMath:
    async def test_total(self, data):
        row = await run(data)
        assert row["data"] == [3, 0, 2, 0, 0, 0, 3]
        assert row["count"] == 8.0
        assert row["label"] == "$pageview"
        assert row["days"][0] == "2020-01-06"
        assert row["labels"][0] == "6-Jan-2020"

    async def test_all_events(self, data):
        row = await run(data, event=None)
        assert row["data"] == [3, 0, 2, 1, 0, 0, 3]
        assert row["label"] == "All events"

    async def test_missing_event_gives_zeros(self, data):
        row = await run(data, event="nope")
        assert row["data"] == [0] * 7 and row["count"] == 0

    async def test_dau(self, data):
        row = await run(data, math="dau")
        assert row["data"] == [2, 0, 2, 0, 0, 0, 2]

    async def test_unique_session_counts_empty_as_one(self, data):
        row = await run(data, math="unique_session")
        assert row["data"] == [2, 0, 1, 0, 0, 0, 1]

    async def test_unique_group(self, data):
        row = await run(data, math="unique_group", math_group_type_index=0)
        assert row["data"] == [0, 0, 0, 0, 0, 0, 2]

    async def test_dau_by_group(self, data):
        row = await run(data, math="dau", math_group_type_index=0)
        assert row["data"] == [0, 0, 0, 0, 0, 0, 2]

    async def test_unique_group_without_index_is_total(self, data):
        row = await run(data, math="unique_group")
        assert row["data"] == [3, 0, 2, 0, 0, 0, 3]


class TestPropertyMath:
    @pytest.mark.parametrize(("math", "expected"), [
        ("sum", [14, 0, 7, 0, 0, 0, 6.5]),
        ("avg", [14 / 3, 0, 7, 0, 0, 0, 3.25]),
        ("min", [1, 0, 7, 0, 0, 0, 2.5]),
        ("max", [10, 0, 7, 0, 0, 0, 4]),
    ])
    async def test_stat(self, data, math, expected):
        row = await run(data, math=math, math_property="n")
        assert row["data"] == pytest.approx(expected)

    async def test_median(self, data):
        row = await run(data, math="median", math_property="n")
        assert row["data"] == pytest.approx([3, 0, 7, 0, 0, 0, 3.25])

    @pytest.mark.parametrize("math", ["p75", "p90", "p95", "p99"])
    async def test_quantiles_are_within_range(self, data, math):
        row = await run(data, math=math, math_property="n")
        assert 3 <= row["data"][0] <= 10 and row["data"][2] == 7

    async def test_multiplier(self, data):
        row = await run(data, math="sum", math_property="n", math_multiplier=2)
        assert row["data"] == pytest.approx([28, 0, 14, 0, 0, 0, 13])

    async def test_person_property(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": "a", "timestamp": "2020-01-06T10:00:00Z",
             "person_properties": {"age": 30}},
            {"event": "$pageview", "distinct_id": "b", "timestamp": "2020-01-06T11:00:00Z",
             "person_properties": {"age": "10"}},
        ])
        row = await run(engine, math="avg", math_property="age", math_property_type="person_properties")
        assert row["data"][0] == 20

    async def test_missing_property_is_400(self, data):
        from app.errors import QueryError

        with pytest.raises(QueryError) as exc:
            await run(data, math="sum")
        assert exc.value.attr == "query.series[0].math_property"


class TestCountPerActor:
    @pytest.mark.parametrize(("math", "expected"), [
        ("avg_count_per_actor", [1.5, 0, 1, 0, 0, 0, 1.5]),
        ("min_count_per_actor", [1, 0, 1, 0, 0, 0, 1]),
        ("max_count_per_actor", [2, 0, 1, 0, 0, 0, 2]),
        ("median_count_per_actor", [1.5, 0, 1, 0, 0, 0, 1.5]),
    ])
    async def test_stat(self, data, math, expected):
        row = await run(data, math=math)
        assert row["data"] == pytest.approx(expected)

    async def test_total_value(self, data):
        rows = await data.results(trends(events(math="max_count_per_actor"), dateRange=RANGE,
                                         trendsFilter={"display": "BoldNumber"}), now=NOW)
        assert rows[0]["aggregated_value"] == 3  # u1 on the 6th (2) and the 8th (1)


class TestRollingActive:
    async def test_weekly_active_window(self, engine):
        # An event on 01-03 counts for 01-03 … 01-09 and not 01-10 (spec §4.2).
        await insert_events(engine.ch, engine.env_id, [ev(3, "a"), ev(5, "b")])
        rows = await engine.results(trends(events(math="weekly_active"),
                                           dateRange={"date_from": "2020-01-01", "date_to": "2020-01-12"}), now=NOW)
        assert rows[0]["data"] == [0, 0, 1, 1, 2, 2, 2, 2, 2, 1, 1, 0]

    async def test_monthly_active_counts_earlier_events(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev(1, "a"), ev(10, "b")])
        row = await run(engine, math="monthly_active")
        assert row["data"] == [1, 1, 1, 1, 2, 2, 2]

    async def test_weekly_active_is_dau_by_week(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev(6, "a"), ev(7, "a"), ev(8, "b")])
        rows = await engine.results(trends(events(math="weekly_active"), interval="week", dateRange=RANGE), now=NOW)
        assert rows[0]["data"] == [2, 0]  # weeks starting Sunday 01-05 and 01-12

    async def test_hourly(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$pageview", "distinct_id": "a", "timestamp": "2020-01-05T10:59:59Z"},
        ])
        rows = await engine.results(trends(events(math="weekly_active"), interval="hour",
                                           dateRange={"date_from": "2020-01-12T08:00:00", "date_to": "2020-01-12T11:00:00"}),
                                    now=NOW)
        assert rows[0]["data"] == [1, 1, 0, 0]  # the 10:00 slot drops out exactly 7 days later

    async def test_total_value(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev(1, "a"), ev(5, "b"), ev(11, "c")])
        rows = await engine.results(trends(events(math="weekly_active"), dateRange=RANGE,
                                           trendsFilter={"display": "BoldNumber"}), now=NOW)
        # Window [date_to − 7 d, date_to] starts 01-05 23:59:59: only c.
        assert rows[0]["aggregated_value"] == 1


class TestFirstTime:
    async def test_first_time_for_user(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            ev(2, "old"), ev(7, "old"),             # first seen before the range
            ev(7, "new", plan="pro"), ev(9, "new"),  # counted on the 7th
            ev(10, "later", plan="free"), ev(11, "later", plan="pro"),
        ])
        row = await run(engine, math="first_time_for_user")
        assert row["data"] == [0, 1, 0, 0, 1, 0, 0]
        row = await run(engine, math="first_time_for_user",
                        properties=[{"key": "plan", "value": "pro"}])
        # later's first event (01-10) does not match the filter, so later is not counted.
        assert row["data"] == [0, 1, 0, 0, 0, 0, 0]

    async def test_first_matching_event(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            ev(2, "old"), ev(7, "old", plan="pro"), ev(10, "later", plan="free"), ev(11, "later", plan="pro"),
        ])
        row = await run(engine, math="first_matching_event_for_user", properties=[{"key": "plan", "value": "pro"}])
        assert row["data"] == [0, 1, 0, 0, 0, 1, 0]

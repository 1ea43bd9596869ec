"""Buckets follow the project's zone (§3.4): UTC, a negative and a positive offset, and DST days."""

from __future__ import annotations

import pytest

from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events

# Three events around midnight UTC on 2020-01-10.
EVENTS = [
    {"event": "e", "distinct_id": "a", "timestamp": "2020-01-09T20:00:00Z"},
    {"event": "e", "distinct_id": "a", "timestamp": "2020-01-10T02:00:00Z"},
    {"event": "e", "distinct_id": "b", "timestamp": "2020-01-10T16:00:00Z"},
]
QUERY = trends(events("e"), dateRange={"date_from": "2020-01-09", "date_to": "2020-01-11"})


@pytest.mark.parametrize(("zone", "expected", "first_label"), [
    ("UTC", [1, 2, 0], "9-Jan-2020"),
    ("America/Los_Angeles", [2, 1, 0], "9-Jan-2020"),  # UTC−8: 02:00Z is still the 9th
    ("Asia/Tokyo", [0, 2, 1], "9-Jan-2020"),  # UTC+9: 20:00Z is already the 10th
])
async def test_daily_buckets_follow_zone(engine, zone, expected, first_label):
    await engine.configure(timezone=zone)
    await insert_events(engine.ch, engine.env_id, EVENTS)
    response = await engine.query(QUERY, now="2020-01-12T00:00:00Z")
    row = response["results"][0]
    assert row["data"] == expected
    assert row["labels"][0] == first_label
    assert response["timezone"] == zone


async def test_negative_offset_resolved_range(engine):
    await engine.configure(timezone="America/Los_Angeles")
    response = await engine.query(QUERY, now="2020-01-12T00:00:00Z")
    assert response["resolved_date_range"] == {"date_from": "2020-01-09T00:00:00-08:00",
                                               "date_to": "2020-01-11T23:59:59.999999-08:00"}


async def test_relative_range_uses_local_today(engine):
    await engine.configure(timezone="Asia/Tokyo")
    await insert_events(engine.ch, engine.env_id, [{"event": "e", "distinct_id": "a",
                                                     "timestamp": "2020-01-11T16:00:00Z"}])
    # 2020-01-11T20:00Z is already the 12th in Tokyo; the event (01:00 on the 12th local) is today.
    rows = await engine.results(trends(events("e"), dateRange={"date_from": "-1d"}), now="2020-01-11T20:00:00Z")
    assert rows[0]["days"] == ["2020-01-11", "2020-01-12"] and rows[0]["data"] == [0, 1]


class TestDst:
    async def test_spring_forward_day_has_23_hours(self, engine):
        await engine.configure(timezone="Europe/Berlin")
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "a", "timestamp": "2020-03-28T23:30:00Z"},  # 00:30 CET on the 29th
            {"event": "e", "distinct_id": "a", "timestamp": "2020-03-29T01:30:00Z"},  # 03:30 CEST
            {"event": "e", "distinct_id": "a", "timestamp": "2020-03-29T21:59:00Z"},  # 23:59 CEST
            {"event": "e", "distinct_id": "a", "timestamp": "2020-03-29T22:30:00Z"},  # the 30th
        ])
        query = trends(events("e"), interval="hour",
                       dateRange={"date_from": "2020-03-29", "date_to": "2020-03-29T23:59:59", "explicitDate": True})
        row = (await engine.results(query, now="2020-04-01T00:00:00Z"))[0]
        assert len(row["data"]) == 23
        assert "2020-03-29 02:00:00" not in row["days"]
        assert row["data"][0] == 1 and row["data"][2] == 1 and row["data"][-1] == 1 and row["count"] == 3
        daily = trends(events("e"), dateRange={"date_from": "2020-03-28", "date_to": "2020-03-30"})
        row = (await engine.results(daily, now="2020-04-01T00:00:00Z"))[0]
        assert row["data"] == [0, 3, 1]

    async def test_fall_back_day_weekly_active(self, engine):
        await engine.configure(timezone="America/New_York")
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "a", "timestamp": "2020-10-29T12:00:00Z"},
            {"event": "e", "distinct_id": "b", "timestamp": "2020-11-01T12:00:00Z"},
        ])
        query = trends(events("e", math="weekly_active"),
                       dateRange={"date_from": "2020-10-31", "date_to": "2020-11-06"})
        row = (await engine.results(query, now="2020-11-07T00:00:00Z"))[0]
        assert row["data"] == [1, 2, 2, 2, 2, 1, 1]


async def test_week_start_monday(engine):
    await engine.configure(week_start_day=1)
    await insert_events(engine.ch, engine.env_id, [
        {"event": "e", "distinct_id": "a", "timestamp": "2020-11-08T12:00:00Z"},  # Sunday
        {"event": "e", "distinct_id": "a", "timestamp": "2020-11-09T12:00:00Z"},  # Monday
    ])
    query = trends(events("e"), interval="week", dateRange={"date_from": "2020-11-02", "date_to": "2020-11-15"})
    row = (await engine.results(query, now="2020-11-20T00:00:00Z"))[0]
    assert row["days"] == ["2020-11-02", "2020-11-09"] and row["data"] == [1, 1]
    await engine.configure(week_start_day=0)
    row = (await engine.results(query, now="2020-11-20T00:00:00Z"))[0]
    assert row["days"] == ["2020-11-01", "2020-11-08", "2020-11-15"] and row["data"] == [0, 2, 0]


async def test_convert_to_project_timezone_off(engine):
    await engine.configure(timezone="Asia/Tokyo")
    await insert_events(engine.ch, engine.env_id, EVENTS)
    query = {**QUERY, "modifiers": {"convertToProjectTimezone": False}}
    row = (await engine.query(query, now="2020-01-12T00:00:00Z"))["results"][0]
    assert row["data"] == [1, 2, 0]

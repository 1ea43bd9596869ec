"""The previous period of compare (spec §8), including the newest rules: whole previous calendar
units for `wStart`/`mStart`/`qStart`/`yStart`, `all`, and the default range's +1 day."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from app import clock
from app.query_engine.dates import previous_period, resolve
from tests.query_engine.helpers import insert_events

UTC = ZoneInfo("UTC")


def _previous(date_from, date_to, interval, now, *, compare_to=None, earliest=None, tz=UTC):
    current = resolve(date_from=date_from, date_to=date_to, explicit=False, interval=interval, tz=tz,
                      now=datetime.fromisoformat(now).replace(tzinfo=timezone.utc), week_start_day=0,
                      earliest=earliest)
    prev = previous_period(current, compare_to, interval, tz)
    return prev.date_from.isoformat(), prev.date_to.isoformat()


class TestPreviousPeriod:
    @pytest.mark.parametrize("date_from, date_to, interval, now, expected", [
        # absolute range: the same number of days just before
        ("2020-01-15", "2020-01-19", "day", "2020-01-24T12:00:00",
         ("2020-01-10T00:00:00+00:00", "2020-01-14T23:59:59.999999+00:00")),
        # -7d is 8 days: shifted one day later to keep weekdays aligned
        ("-7d", None, "day", "2020-01-24T12:00:00",
         ("2020-01-10T00:00:00+00:00", "2020-01-17T23:59:59.999999+00:00")),
        ("-14dStart", None, "day", "2020-01-24T12:00:00",
         ("2019-12-27T00:00:00+00:00", "2020-01-10T23:59:59.999999+00:00")),
        # an absent date_from is the default -7d, with the same shift
        (None, None, "day", "2020-01-24T12:00:00",
         ("2020-01-10T00:00:00+00:00", "2020-01-17T23:59:59.999999+00:00")),
        # a relative date_to with a delta turns the shift off
        ("-7d", "-1d", "day", "2020-01-24T12:00:00",
         ("2020-01-10T00:00:00+00:00", "2020-01-16T23:59:59.999999+00:00")),
        # -1w is weeks, not days: no shift
        ("-1w", None, "day", "2020-01-24T12:00:00",
         ("2020-01-09T00:00:00+00:00", "2020-01-16T23:59:59.999999+00:00")),
        # hour: F's time of day on the start, T's minutes on the end
        ("-24h", None, "hour", "2020-01-24T12:30:00",
         ("2020-01-22T12:00:00+00:00", "2020-01-23T12:59:59.999999+00:00")),
        ("dStart", None, "hour", "2020-01-24T12:30:00",
         ("2020-01-23T00:00:00+00:00", "2020-01-23T12:59:59.999999+00:00")),
        # -48h by day: no weekday shift (the delta is in hours)
        ("-48h", None, "day", "2021-08-25T00:00:00",
         ("2021-08-20T00:00:00+00:00", "2021-08-22T23:59:59.999999+00:00")),
        # minute: [F - D, F]
        ("-3h", None, "minute", "2020-01-24T12:00:00",
         ("2020-01-24T05:59:00.000001+00:00", "2020-01-24T09:00:00+00:00")),
        # this month/year/week/quarter so far: the whole previous unit
        ("mStart", None, "day", "2020-03-10T12:00:00",
         ("2020-02-01T00:00:00+00:00", "2020-02-29T23:59:59.999999+00:00")),
        ("yStart", None, "month", "2020-03-10T12:00:00",
         ("2019-01-01T00:00:00+00:00", "2019-12-31T23:59:59.999999+00:00")),
        ("wStart", None, "day", "2020-03-10T12:00:00",
         ("2020-03-03T00:00:00+00:00", "2020-03-09T23:59:59.999999+00:00")),
        ("qStart", None, "day", "2020-03-10T12:00:00",
         ("2019-12-10T00:00:00+00:00", "2020-03-09T23:59:59.999999+00:00")),
        # ... but not with a date_to
        ("mStart", "-1d", "day", "2020-03-10T12:00:00",
         ("2020-02-21T00:00:00+00:00", "2020-02-29T23:59:59.999999+00:00")),
    ])
    def test_rules(self, date_from, date_to, interval, now, expected):
        assert _previous(date_from, date_to, interval, now) == expected

    def test_all_ends_just_before_the_first_event(self):
        earliest = datetime(2020, 1, 10, 15, 30, tzinfo=timezone.utc)
        assert _previous("all", None, "day", "2020-01-24T12:00:00", earliest=earliest) == (
            "2019-12-27T07:00:00+00:00", "2020-01-10T15:29:59.999999+00:00")

    def test_compare_to(self):
        assert _previous("2020-01-15", "2020-01-19", "day", "2020-01-24T12:00:00", compare_to="-1w") == (
            "2020-01-08T00:00:00+00:00", "2020-01-12T23:59:59.999999+00:00")

    def test_month_start_in_a_zone(self):
        tz = ZoneInfo("America/New_York")  # 2020-03-01 03:00 UTC is still February there
        assert _previous("mStart", None, "day", "2020-03-01T03:00:00", tz=tz) == (
            "2020-01-01T00:00:00-05:00", "2020-01-31T23:59:59.999999-05:00")


def _ev(timestamp, distinct_id="a"):
    return {"event": "e", "distinct_id": distinct_id, "timestamp": timestamp}


@pytest.fixture
def frozen():
    yield lambda now: clock.freeze(now)
    clock.freeze(None)


async def _post(client, env, query):
    r = await client.post(f"/api/environments/{env.id}/query/", json={"query": query}, headers=env.headers)
    assert r.status_code == 200, r.text
    return r.json()


def _trends(**fields):
    return {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "e"}],
            "compareFilter": {"compare": True}, **fields}


class TestCompareEndToEnd:
    async def test_month_start_compares_with_the_whole_previous_month(self, client, env, backends, frozen):
        await insert_events(backends.clickhouse, env.id, [
            _ev("2020-01-31T23:00:00Z"), _ev("2020-02-01T00:00:00Z"), _ev("2020-02-15T10:00:00Z"),
            _ev("2020-02-29T23:59:59Z"), _ev("2020-03-01T00:00:00Z"), _ev("2020-03-10T09:00:00Z"),
            _ev("2020-03-10T09:30:00Z"),
        ])
        frozen("2020-03-10T12:00:00Z")
        body = await _post(client, env, _trends(dateRange={"date_from": "mStart"}))
        current, previous = body["results"]
        assert (current["compare_label"], current["count"], len(current["data"])) == ("current", 3, 10)
        assert (previous["compare_label"], previous["count"], len(previous["data"])) == ("previous", 3, 29)
        assert previous["days"][0] == "2020-02-01" and previous["days"][-1] == "2020-02-29"
        assert previous["labels"][0] == "1-Feb-2020" and previous["data"][14] == 1

    async def test_all_time(self, client, env, backends, frozen):
        await insert_events(backends.clickhouse, env.id, [
            _ev("2020-01-20T10:00:00Z"), _ev("2020-01-22T10:00:00Z"), _ev("2020-01-22T11:00:00Z"),
        ])
        frozen("2020-01-23T12:00:00Z")
        body = await _post(client, env, _trends(dateRange={"date_from": "all"}))
        current, previous = body["results"]
        assert current["days"] == ["2020-01-20", "2020-01-21", "2020-01-22", "2020-01-23"]
        assert current["data"] == [1, 0, 2, 0]
        # 2020-01-20 10:00 .. 01-23 23:59:59 is 3 days 13:59:59.999999 long: the previous period is
        # 2020-01-16 20:00 .. 01-20 09:59:59.999999
        assert previous["days"] == ["2020-01-16", "2020-01-17", "2020-01-18", "2020-01-19", "2020-01-20"]
        assert previous["data"] == [0, 0, 0, 0, 0]

    async def test_default_range_shifts_one_day(self, client, env, backends, frozen):
        await insert_events(backends.clickhouse, env.id, [
            _ev("2020-01-09T10:00:00Z"), _ev("2020-01-10T10:00:00Z"), _ev("2020-01-17T10:00:00Z"),
            _ev("2020-01-18T10:00:00Z"),
        ])
        frozen("2020-01-24T12:00:00Z")
        current, previous = (await _post(client, env, _trends()))["results"]
        assert current["days"][0] == "2020-01-17" and current["data"][0] == 1 and current["count"] == 2
        # 01-10 .. 01-17 (not 01-09 .. 01-16): the event of 01-17 is in both periods
        assert previous["days"][0] == "2020-01-10" and previous["days"][-1] == "2020-01-17"
        assert previous["data"] == [1, 0, 0, 0, 0, 0, 0, 1]

    async def test_hourly_today(self, client, env, backends, frozen):
        await insert_events(backends.clickhouse, env.id, [
            _ev("2020-01-23T00:30:00Z"), _ev("2020-01-23T12:10:00Z"), _ev("2020-01-23T13:00:00Z"),
            _ev("2020-01-24T01:00:00Z"),
        ])
        frozen("2020-01-24T12:30:00Z")
        body = await _post(client, env, _trends(dateRange={"date_from": "dStart"}, interval="hour"))
        current, previous = body["results"]
        assert len(current["data"]) == 13 and current["count"] == 1
        assert previous["days"][0] == "2020-01-23 00:00:00" and previous["days"][-1] == "2020-01-23 12:00:00"
        assert previous["data"][0] == 1 and previous["data"][12] == 1 and previous["count"] == 2
        assert previous["labels"][0] == "23-Jan 00:00"


class TestDashboardAllTime:
    def test_dashboard_all_time_override_switches_compare_off(self):
        from app.services.dashboards import apply_dashboard

        query = {"kind": "InsightVizNode", "source": _trends(dateRange={"date_from": "-7d"})}
        applied = apply_dashboard(query, {"date_from": "all"}, None)
        assert applied["source"]["compareFilter"] == {"compare": False}
        assert query["source"]["compareFilter"] == {"compare": True}  # the stored query is untouched
        assert apply_dashboard(query, {"date_from": "-30d"}, None)["source"]["compareFilter"] == {"compare": True}

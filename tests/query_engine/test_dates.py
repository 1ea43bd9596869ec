"""Date-range resolution (§3), labels (§10.6) and previous periods (§8), without ClickHouse."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from app.errors import QueryError
from app.query_engine.dates import labels, parse_date, previous_period, resolve

UTC = ZoneInfo("UTC")
NOW = datetime(2020, 1, 24, 15, 30, 12, tzinfo=timezone.utc)


def r(date_from=None, date_to=None, interval="day", tz=UTC, explicit=False, exact=False, wsd=0, now=NOW):
    return resolve(date_from=date_from, date_to=date_to, explicit=explicit, interval=interval, tz=tz, now=now,
                   week_start_day=wsd, exact=exact)


def s(dt: datetime) -> str:
    return dt.replace(tzinfo=None).isoformat(sep=" ")


class TestParse:
    @pytest.mark.parametrize(("text", "expected"), [
        ("-1dStart", "2020-01-23 00:00:00"),
        ("-1dEnd", "2020-01-23 23:59:59.999999"),
        ("dStart", "2020-01-24 00:00:00"),
        ("-1mStart", "2019-12-01 00:00:00"),
        ("-1mEnd", "2019-12-31 23:59:59.999999"),
        ("mStart", "2020-01-01 00:00:00"),
        ("yStart", "2020-01-01 00:00:00"),
        ("-2h", "2020-01-24 13:30:12"),
        ("-30M", "2020-01-24 15:00:12"),
        ("-1w", "2020-01-17 15:30:12"),
        ("-1q", "2019-10-25 15:30:12"),
        ("-1y", "2019-01-24 15:30:12"),
        ("2020-01-09", "2020-01-09 00:00:00"),
        ("2020-1-9", "2020-01-09 00:00:00"),
        ("2020-01-09T10:11", "2020-01-09 10:11:00"),
        ("2020-01-09 10:11:12.5", "2020-01-09 10:11:12.500000"),
        ("2020-01-09T10:00:00+02:00", "2020-01-09 08:00:00"),
        ("2020-01-09T10:00:00Z", "2020-01-09 10:00:00"),
        ("garbage", "2020-01-24 15:30:12"),
    ])
    def test_forms(self, text, expected):
        assert s(parse_date(text, UTC, NOW, path="x").value) == expected

    def test_offset_converted_into_zone(self):
        value = parse_date("2020-01-09T10:00:00Z", ZoneInfo("America/New_York"), NOW, path="x").value
        assert s(value) == "2020-01-09 05:00:00"

    def test_invalid_date_is_query_error(self):
        with pytest.raises(QueryError) as exc:
            parse_date("2020-02-31", UTC, NOW, path="query.dateRange.date_from")
        assert exc.value.attr == "query.dateRange.date_from"


class TestResolve:
    def test_default_is_eight_days(self):
        rng = r()
        assert s(rng.date_from) == "2020-01-17 00:00:00" and s(rng.date_to) == "2020-01-24 23:59:59.999999"
        assert len(rng.buckets()) == 8

    def test_minus_seven_days(self):
        rng = r("-7d")
        assert len(rng.buckets()) == 8 and s(rng.lower) == "2020-01-17 00:00:00"
        assert s(rng.upper) == "2020-01-24 23:59:59"

    def test_hours_with_day_interval_do_not_snap(self):
        rng = r("-24h")
        assert s(rng.lower) == "2020-01-23 15:00:00"

    def test_hour_interval(self):
        rng = r("-24h", interval="hour")
        assert s(rng.date_to) == "2020-01-24 15:59:59.999999" and len(rng.buckets()) == 25

    def test_absolute_date_to_with_hour_interval_is_kept(self):
        rng = r("2020-01-09", "2020-01-09", interval="hour")
        assert len(rng.buckets()) == 1

    def test_month_snaps(self):
        rng = r("2020-06-07", "2020-07-01", interval="month")
        assert s(rng.lower) == "2020-06-01 00:00:00"

    def test_week_snaps_to_day_only(self):
        rng = r("2020-11-04", "2020-11-20", interval="week")
        assert s(rng.lower) == "2020-11-04 00:00:00"
        assert [b.key for b in rng.buckets()] == ["2020-11-01", "2020-11-08", "2020-11-15"]

    def test_week_starting_monday(self):
        rng = r("2020-11-04", "2020-11-20", interval="week", wsd=1)
        assert [b.key for b in rng.buckets()] == ["2020-11-02", "2020-11-09", "2020-11-16"]

    def test_explicit_date(self):
        rng = r("2020-01-09T10:00:00", "2020-01-10T05:00:00", explicit=True)
        assert s(rng.lower) == "2020-01-09 10:00:00" and s(rng.date_to) == "2020-01-10 05:00:00"

    def test_bold_number_exact_range(self):
        rng = r("-7d", exact=True)
        assert s(rng.lower) == "2020-01-17 15:30:12" and s(rng.date_to) == "2020-01-24 15:30:12"

    def test_dst_day_has_23_hourly_buckets(self):
        tz = ZoneInfo("Europe/Berlin")
        rng = r("2020-03-29", "2020-03-29", interval="hour", tz=tz, now=datetime(2020, 4, 1, tzinfo=timezone.utc),
                explicit=False)
        rng = resolve(date_from="2020-03-29", date_to="2020-03-29T23:00:00", explicit=True, interval="hour", tz=tz,
                      now=datetime(2020, 4, 1, tzinfo=timezone.utc), week_start_day=0)
        assert len(rng.buckets()) == 23

    def test_too_many_buckets(self):
        with pytest.raises(QueryError):
            r("-100d", interval="minute").buckets()

    def test_resolved_json(self):
        assert r("2020-01-09", "2020-01-19").as_json() == {
            "date_from": "2020-01-09T00:00:00Z", "date_to": "2020-01-19T23:59:59.999999Z"}
        tz = ZoneInfo("Asia/Kolkata")
        assert r("2020-01-09", "2020-01-19", tz=tz).as_json()["date_from"] == "2020-01-09T00:00:00+05:30"


class TestLabels:
    def test_day_and_hour(self):
        rng = r("2020-01-09", "2020-01-09", interval="hour", explicit=True)
        assert labels(rng, rng.buckets()) == (["9-Jan 00:00"], ["2020-01-09 00:00:00"])

    def test_month(self):
        rng = r("2020-01-09", "2020-02-09", interval="month")
        assert labels(rng, rng.buckets())[0] == ["Jan 2020", "Feb 2020"]

    def test_week_labels_are_clipped(self):
        rng = r("2019-12-29", "2020-01-14", interval="week")
        assert labels(rng, rng.buckets())[0] == ["29-Dec-2019 – 4-Jan-2020", "5–11 Jan", "12–14 Jan"]
        rng = r("2020-10-28", "2020-11-14", interval="week")
        assert labels(rng, rng.buckets())[0] == ["28–31 Oct", "1–7 Nov", "8–14 Nov"]
        rng = r("2020-10-31", "2020-10-31", interval="week")
        assert labels(rng, rng.buckets())[0] == ["31-Oct-2020"]


class TestPreviousPeriod:
    def test_absolute_range(self):
        prev = previous_period(r("2020-01-15", "2020-01-19"), None, "day", UTC)
        assert (prev.date_from.date().isoformat(), prev.date_to.date().isoformat()) == ("2020-01-10", "2020-01-14")

    def test_relative_weeks_add_a_day(self):
        prev = previous_period(r("-7d"), None, "day", UTC)
        assert (prev.date_from.date().isoformat(), prev.date_to.date().isoformat()) == ("2020-01-10", "2020-01-17")

    def test_compare_to(self):
        prev = previous_period(r("2020-01-15", "2020-01-19"), "-1w", "day", UTC)
        assert (prev.date_from.date().isoformat(), prev.date_to.date().isoformat()) == ("2020-01-08", "2020-01-12")

    def test_hourly_previous_period(self):
        prev = previous_period(r("-2h", interval="hour"), None, "hour", UTC)
        # current 13:00 … 15:59:59.999999: PostHog moves back by the span, then puts back F's time of
        # day (to compare day by day), which for a range shorter than a day lands on F itself (§8)
        assert (s(prev.date_from), s(prev.date_to)) == ("2020-01-24 13:00:00", "2020-01-24 15:59:59.999999")
        prev = previous_period(r("-26h", interval="hour"), None, "hour", UTC)
        assert (s(prev.date_from), s(prev.date_to)) == ("2020-01-22 13:00:00", "2020-01-23 15:59:59.999999")

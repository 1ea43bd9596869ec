"""Rules of spec/QUERY_ENGINE.md (§3, §5.1, §6, §7.2, §10) that an audit against the spec and PostHog's
trends runner found we broke, one test each, through `POST query/`. Behaviour the audit found
correct is covered elsewhere."""

from __future__ import annotations

import pytest

from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events

NOW = "2020-01-19T12:00:00Z"
RANGE = {"date_from": "2020-01-15", "date_to": "2020-01-19"}


def ev(ts: str, distinct_id: str = "a", event: str = "a", **props):
    return {"event": event, "distinct_id": distinct_id, "timestamp": ts, "properties": props}


class TestDateResolution:
    # §3.1 "Optional truncation: if the delta has hours, truncate to the hour; otherwise truncate to
    # 00:00" and §3.2 "date_from given: parse it, truncating unless (interval is minute) or
    # (exact-time-range mode)". PostHog: QueryDateRange.date_from() calls relative_date_parse with
    # always_truncate=not (interval_name == "minute" or exact_timerange), and
    # posthog/utils.py relative_date_parse_with_delta_mapping truncates to the day whenever the delta
    # has no "hours" key, which includes a minutes delta (`-30M`).
    async def test_minutes_delta_truncates_to_day_for_hour_interval(self, engine):
        body = await engine.query(trends(events("a"), interval="hour", dateRange={"date_from": "-30M"}), now=NOW)
        assert body["resolved_date_range"]["date_from"] == "2020-01-19T00:00:00Z"
        assert len(body["results"][0]["data"]) == 13  # 00:00 … 12:00

    async def test_minutes_delta_truncates_to_day_for_day_interval(self, engine):
        body = await engine.query(trends(events("a"), dateRange={"date_from": "-30M"}), now=NOW)
        assert body["resolved_date_range"]["date_from"] == "2020-01-19T00:00:00Z"

    async def test_minute_interval_keeps_minutes_delta_exact(self, engine):
        # with a minute interval nothing is truncated
        body = await engine.query(trends(events("a"), interval="minute", dateRange={"date_from": "-30M"}), now=NOW)
        assert body["resolved_date_range"]["date_from"] == "2020-01-19T11:30:00Z"


class TestActions:
    # §6 "A missing action id matches nothing. In trends, the series is then dropped from `results`
    # entirely." and §14.12 "A missing action drops the series". PostHog: TrendsQueryRunner
    # .build_series_response catches Action.DoesNotExist and skips the series.
    async def test_missing_action_drops_the_series(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z", event="p")])
        results = await engine.results(trends({"kind": "ActionsNode", "id": 987654}, events("p"), dateRange=RANGE),
                                       now=NOW)
        assert [r["label"] for r in results] == ["p"]
        assert results[0]["data"] == [0, 1, 0, 0, 0]


class TestPropertyFilters:
    # §5.1 "An empty object `{}` is true."
    async def test_empty_filter_object_is_true(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z", event="p"),
                                                       ev("2020-01-17T10:00:00Z", event="p", x="1")])
        results = await engine.results(trends(events("p", properties=[{}]), dateRange=RANGE), now=NOW)
        assert results[0]["data"] == [0, 1, 1, 0, 0]

    async def test_empty_filter_object_in_global_properties_is_true(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z", event="p")])
        results = await engine.results(trends(events("p"), properties=[{}], dateRange=RANGE), now=NOW)
        assert results[0]["data"] == [0, 1, 0, 0, 0]

    # §5.1 "A filter that cannot be parsed (e.g. no `value` for an operator that needs one, or no key)
    # is **ignored** (treated as true)." PostHog's property_to_expr turns the ValueError of a filter
    # without a value into a constant true.
    async def test_filter_without_value_is_ignored(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("2020-01-16T10:00:00Z", event="p", b="x"),
                                                       ev("2020-01-17T10:00:00Z", event="p")])
        results = await engine.results(
            trends(events("p", properties=[{"type": "event", "key": "b", "operator": "exact"}]), dateRange=RANGE),
            now=NOW)
        assert results[0]["data"] == [0, 1, 1, 0, 0]


class TestBooleanBreakdown:
    # §7.2 "Boolean → "true"/"false". Boolean breakdowns are labelled `true`/`false` (`1`/`0` are
    # mapped too)." PostHog trends_query_runner.py: when the breakdown property is declared Boolean,
    # `_convert_boolean` maps {1, "1"} → "true", {0, "0"} → "false" for both `label` and
    # `breakdown_value` (and §5.3: a Boolean-typed property is never the text "1"/"0").
    async def test_boolean_property_breakdown_has_no_1_0_rows(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            ev("2020-01-15T10:00:00Z", "a", event="f", flag=True),
            ev("2020-01-15T11:00:00Z", "b", event="f", flag=1),
            ev("2020-01-16T10:00:00Z", "c", event="f", flag=0),
            ev("2020-01-16T11:00:00Z", "d", event="f", flag=False),
        ])
        await engine.property_type("flag", "Boolean")
        results = await engine.results(trends(events("f"), dateRange=RANGE, breakdownFilter={"breakdown": "flag"}),
                                       now=NOW)
        values = {r["breakdown_value"] for r in results}
        labels = {r["label"] for r in results}
        assert not values & {"1", "0"} and not labels & {"1", "0"}
        assert {"true", "false"} <= values


class TestResultFormat:
    # §10.2 `filter` "echo of the query as a legacy dict". PostHog trends_query_runner.py
    # _query_to_filter(): date_from/date_to are the *resolved* datetimes
    async def test_filter_echo_uses_resolved_dates_and_drops_nulls(self, engine):
        body = await engine.query(trends(events("a"), dateRange={"date_from": "-7d"}), now=NOW)
        echo = body["results"][0]["filter"]
        assert echo["date_from"] == body["resolved_date_range"]["date_from"] == "2020-01-12T00:00:00Z"
        assert echo["date_to"] == body["resolved_date_range"]["date_to"] == "2020-01-19T23:59:59.999999Z"
        assert None not in echo.values()
        assert "sampling_factor" not in echo and "aggregation_group_type_index" not in echo

    # §10.2 `action.days` = "[bucket datetimes]"; §10.3 a total-value row has the "same keys, except
    # data: [], days: [], count: 0" (action is not in the exception list). PostHog
    # build_series_response(): for aggregate_values rows `"action": {"days":
    # self.query_date_range.all_values(), ...}` (the day buckets of the range).
    async def test_total_value_row_action_days_are_the_range_buckets(self, engine):
        results = await engine.results(trends(events("a"), dateRange=RANGE, trendsFilter={"display": "ActionsPie"}),
                                       now=NOW)
        assert results[0]["days"] == [] and results[0]["data"] == []
        assert results[0]["action"]["days"] == [f"2020-01-{d}T00:00:00Z" for d in range(15, 20)]

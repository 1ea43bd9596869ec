"""Session properties (§5.6, §7.2) computed from the events of each session. Events without a
session id read the sessions join's defaults, as in PostHog: a duration of 0, no entry URL."""

from __future__ import annotations

import pytest

from app.errors import QueryError
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events

NOW = "2020-01-12T12:00:00Z"
RANGE = {"date_from": "2020-01-10", "date_to": "2020-01-12"}
NULL = "$$_posthog_breakdown_null_$$"


def ev(sid, minute, event="$pageview", url="/"):
    props = {"$current_url": url}
    if sid:
        props["$session_id"] = sid
    return {"event": event, "distinct_id": "a", "timestamp": f"2020-01-11T10:{minute:02d}:00Z", "properties": props}


@pytest.fixture
async def data(engine):
    # s1 lasts 10 minutes (its last event is not a pageview), s2 one minute, one event has no session.
    await insert_events(engine.ch, engine.env_id, [
        ev("s1", 0, url="/a"), ev("s1", 5, url="/b"), ev("s1", 10, event="click", url="/c"),
        ev("s2", 20, url="/x"), ev("s2", 21, url="/y"), ev(None, 30),
    ])
    return engine


async def test_duration_filter(data):
    flt = {"type": "session", "key": "$session_duration", "operator": "gt", "value": 300}
    rows = await data.results(trends(events(properties=[flt]), dateRange=RANGE), now=NOW)
    assert rows[0]["count"] == 2


async def test_duration_is_zero_without_session(data):
    def flt(operator, value=None):
        return {"type": "session", "key": "$session_duration", "operator": operator,
                **({"value": value} if value is not None else {})}

    counts = []
    for f in (flt("is_not_set"), flt("is_set"), flt("exact", 0), flt("lt", 30)):
        rows = await data.results(trends(events(properties=[f]), dateRange=RANGE), now=NOW)
        counts.append(rows[0]["count"])
    assert counts == [0, 5, 1, 1]  # five pageviews, one without a session


async def test_entry_url_breakdown(data):
    q = trends(events(), dateRange=RANGE, breakdownFilter={"breakdown": "$entry_current_url", "breakdown_type": "session"})
    rows = await data.results(q, now=NOW)
    assert [(r["breakdown_value"], r["count"]) for r in rows] == [("/a", 2), ("/x", 2), (NULL, 1)]


async def test_duration_breakdown(data):
    q = trends(events(), dateRange=RANGE, breakdownFilter={"breakdown": "$session_duration", "breakdown_type": "session"})
    rows = await data.results(q, now=NOW)
    assert [(r["breakdown_value"], r["count"]) for r in rows] == [("60", 2), ("600", 2), ("0", 1)]  # ties: by text


async def test_unknown_session_property(data):
    flt = {"type": "session", "key": "$channel_type", "value": "x"}
    with pytest.raises(QueryError) as exc:
        await data.results(trends(events(properties=[flt]), dateRange=RANGE), now=NOW)
    assert exc.value.attr == "query.series[0].properties[0].key"


async def test_session_duration_math_counts_each_session_once(data):
    rows = await data.results(trends(events(math="avg", math_property="$session_duration"), dateRange=RANGE), now=NOW)
    assert rows[0]["data"][1] == 220  # (600 + 60 + 0) / 3 sessions, not per event; no session id is one, of 0 s
    rows = await data.results(trends(events(math="max", math_property="$session_duration"), dateRange=RANGE,
                                     trendsFilter={"display": "BoldNumber"}), now=NOW)
    assert rows[0]["aggregated_value"] == 600


async def test_sessionless_events_are_one_session_of_zero(engine):
    await insert_events(engine.ch, engine.env_id, [ev(None, 0), ev(None, 40), ev("", 41), ev("s1", 50), ev("s1", 52)])
    series = [events(math=m, math_property="$session_duration") for m in ("avg", "min", "sum")]
    rows = await engine.results(trends(*series, events(math="unique_session"), dateRange=RANGE), now=NOW)
    assert [r["data"][1] for r in rows] == [60, 0, 120, 2]  # '' (0 s) and s1 (120 s): two sessions
    rows = await engine.results(trends(events(math="avg", math_property="$session_duration"), dateRange=RANGE,
                                       breakdownFilter={"breakdown": "$session_duration", "breakdown_type": "session"}),
                                now=NOW)
    assert [(r["breakdown_value"], r["data"][1]) for r in rows] == [("120", 120), ("0", 0)]

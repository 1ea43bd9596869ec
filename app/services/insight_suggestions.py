"""`GET|POST insights/{id}/suggestions/` (spec/API.md §3.12): follow-up insights.

Retention insights get PostHog's two deterministic suggestions (stickiness and lifecycle of the
returning entity), built from the stored JSON so the client's own fields carry over. Trends insights
get up to three suggestions derived from the query and the environment's data: a breakdown by the
property that splits the series best, compare to the previous period, and unique users instead of
totals. (A funnel of the series' events comes once the funnel engine exists: a suggestion must run.)
"""

from __future__ import annotations

import copy
import math
import re
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.errors import QueryError
from app.models import Environment, Insight
from app.query_engine.executor.base import ClickHouseExecutor
from app.query_engine.scope import Scope
from app.query_engine.trends.runner import TrendsRunner
from app.schemas.insight_analysis import SuggestionRead
from app.schemas.query import ActionsNode, EventsNode, InsightVizNode, TrendsQuery, parse_query
from app.services.elements import run_clickhouse
from app.settings import Settings

MAX_DERIVED = 3
CANDIDATE_KEYS = 50  # the most used property keys that are scored
SCAN_ROWS = 200_000
MAX_DISTINCT = 50  # more values than this is an identifier or free text, not a useful split
SPLIT_BITS_CAP = math.log2(25)  # entropy beyond the default breakdown limit adds nothing visible
# Identifiers and bookkeeping keys: never a meaningful breakdown.
EXCLUDED_KEYS = ["$set", "$set_once", "$unset", "$insert_id", "$session_id", "$window_id", "$device_id", "$time",
                 "$timestamp", "token", "distinct_id", "$groups", "$elements", "$anon_distinct_id", "uuid"]

# One parameterized query: per property key of the series' events, how many events carry it, how many
# distinct values it has and the Shannon entropy of those values. The key '' (added to every event)
# counts the events themselves, for coverage. team_id always filters; every value is a parameter. A
# sample of at most SCAN_ROWS events bounds the cost: the score needs proportions, not exact counts.
PROPERTY_SPLIT_SQL = """
SELECT key, count() AS events, uniqExact(value) AS distinct_values, entropy(value) AS bits
FROM (
    SELECT arrayJoin(arrayConcat([''], JSONExtractKeys(properties))) AS key,
           if(key = '', '', JSONExtractRaw(properties, key)) AS value
    FROM events
    WHERE team_id = {team:Int64}
      AND timestamp >= {since:DateTime64(6, 'UTC')} AND timestamp <= {until:DateTime64(6, 'UTC')}
      AND ({all_events:UInt8} = 1 OR event IN {events:Array(String)})
    LIMIT {rows:UInt32}
)
WHERE key NOT IN {excluded:Array(String)}
GROUP BY key
ORDER BY events DESC, key ASC
LIMIT {limit:UInt32}
"""

_PERIODS = {"Month": ("week", "weeks per month"), "Week": ("day", "days per week"),
            "Hour": ("hour", "hours per day"), "Day": ("day", "days per week")}


# -- retention (exact titles and shapes of §3.12) -------------------------------------------------------
def retention_suggestions(source: dict[str, Any]) -> list[dict[str, Any]]:
    rf = source.get("retentionFilter") or {}
    entity = rf.get("returningEntity") if isinstance(rf, dict) else None
    if not isinstance(entity, dict):
        return []
    common = {"name": entity.get("name"), "custom_name": entity.get("custom_name"),
              "properties": entity.get("properties")}
    if entity.get("type") == "events" or entity.get("kind") == "EventsNode":
        event = entity.get("id") or entity.get("name") or "event"
        series, label = {"kind": "EventsNode", "event": event, **common}, str(event)
    elif entity.get("type") == "actions" or entity.get("kind") == "ActionsNode":
        raw_id = entity.get("id")
        try:
            action_id = int(raw_id) if raw_id is not None else 0
        except (TypeError, ValueError):
            action_id = 0
        series = {"kind": "ActionsNode", "id": action_id, **common}
        label = entity.get("name") or f"Action {action_id}"
    else:
        return []
    interval, unit = _PERIODS.get(rf.get("period") or "Day", _PERIODS["Day"])
    shared = {"series": [series], "interval": interval, "dateRange": source.get("dateRange"),
              "properties": source.get("properties"), "filterTestAccounts": source.get("filterTestAccounts")}
    return [
        {"title": f"Stickiness of users who performed {label}",
         "description": f"See how frequently retained users perform this event ({unit})",
         "targetQuery": {"kind": "InsightVizNode",
                         "source": {"kind": "StickinessQuery", **shared, "stickinessFilter": {}}}},
        {"title": f"Lifecycle of users who perform {label}",
         "description": "See lifecycle of users who perform this event (new vs returning vs resurrecting vs dormant)",
         "targetQuery": {"kind": "InsightVizNode",
                         "source": {"kind": "LifecycleQuery", **copy.deepcopy(shared), "lifecycleFilter": {}}}},
    ]


# -- trends ---------------------------------------------------------------------------------------------
def _series_name(q: TrendsQuery) -> str:
    first = q.series[0]
    name = first.custom_name or (first.event if isinstance(first, EventsNode) else first.name) or "All events"
    return name if len(q.series) == 1 else f"{name} and {len(q.series) - 1} more"


def _scope(env: Environment) -> Scope:
    return Scope(team_id=env.id, timezone=env.timezone or "UTC", now=clock.now(), week_start_day=env.week_start_day or 0)


async def property_splits(clickhouse: ClickHouseExecutor, settings: Settings, env: Environment,
                          q: TrendsQuery) -> list[dict[str, Any]]:
    """Candidate breakdown properties of the series' events in the insight's date range, best first.

    score = coverage × min(entropy, log2(25)): a property most events carry, whose values split them
    evenly into a readable number of groups, explains the most variation a breakdown can show."""
    try:
        rng = TrendsRunner(q, _scope(env)).resolve_range(None)
        since, until = rng.lower, rng.upper
    except QueryError:
        until = clock.now()
        since = until - timedelta(days=30)
    names = [n.event for n in q.series if isinstance(n, EventsNode) and n.event is not None]
    all_events = any(isinstance(n, EventsNode) and n.event is None for n in q.series) or not names
    result = await run_clickhouse(clickhouse, PROPERTY_SPLIT_SQL, {
        "team": env.id, "since": since, "until": until, "all_events": int(all_events), "events": names,
        "excluded": EXCLUDED_KEYS, "limit": CANDIDATE_KEYS + 1, "rows": SCAN_ROWS,
    }, settings=settings, max_rows=CANDIDATE_KEYS + 1)
    rows = {str(r[0]): (int(r[1]), int(r[2]), float(r[3] or 0)) for r in result.rows}
    total = rows.pop("", (0, 0, 0.0))[0]
    out = []
    for key, (events, distinct, bits) in rows.items():
        if not total or distinct < 2 or distinct > MAX_DISTINCT or distinct > 0.5 * events:
            continue
        coverage = events / total
        out.append({"key": key, "coverage": coverage, "distinct": distinct, "bits": bits,
                    "score": round(coverage * min(bits, SPLIT_BITS_CAP), 6)})
    out.sort(key=lambda c: (-c["score"], c["key"]))
    return out


def _mentions(context: str, word: str) -> bool:
    return re.search(rf"(?<![\w$]){re.escape(word.lower())}(?![\w$])", context) is not None


def _names_property(context: str, key: str) -> bool:
    """The context names the property as is (`$device_type`) or in words (`device type`, `browser`)."""
    words = key.lstrip("$").replace("_", " ").strip()
    return _mentions(context, key) or (len(words) >= 2 and _mentions(context, words))


def _runnable(env: Environment, source: dict[str, Any]) -> bool:
    """A suggestion is offered only if the engine accepts it (the same checks `POST query/` runs)."""
    try:
        node = parse_query({"kind": "InsightVizNode", "source": source})
        TrendsRunner(node.source, _scope(env)).check()
    except QueryError:
        return False
    return True


async def trends_suggestions(clickhouse: ClickHouseExecutor, settings: Settings, env: Environment,
                             q: TrendsQuery, source: dict[str, Any], context: str) -> list[dict[str, Any]]:
    name = _series_name(q)
    interval = q.interval.value if q.interval else "day"
    ranked: list[tuple[float, dict[str, Any]]] = []  # (rank, suggestion); lower ranks first
    if q.breakdownFilter is None or (q.breakdownFilter.breakdown is None and not q.breakdownFilter.breakdowns):
        splits = await property_splits(clickhouse, settings, env, q)
        named = [s for s in splits if _names_property(context, s["key"])]
        pick = named[0] if named else (splits[0] if splits else None)
        if pick is not None:
            target = {**copy.deepcopy(source), "breakdownFilter": {"breakdown_type": "event", "breakdown": pick["key"]}}
            ranked.append((-10.0 if named else 0.0, {
                "title": f"{name} broken down by {pick['key']}",
                "description": (f"Splits {name} by the event property {pick['key']}: {round(pick['coverage'] * 100)}% "
                                f"of these events carry it, with {pick['distinct']} values. Of the most used properties "
                                "it splits the events most evenly."),
                "source": target}))
    compare = q.compareFilter
    if not (compare and compare.compare) and not (q.dateRange and q.dateRange.date_from == "all"):
        target = {**copy.deepcopy(source), "compareFilter": {"compare": True}}
        boost = -5.0 if any(_mentions(context, w) for w in ("compare", "previous", "last week", "last month", "before")) else 0.0
        ranked.append((1.0 + boost, {
            "title": f"{name} compared with the previous period",
            "description": "Shows the period before next to the current one, to tell a real change from the usual rhythm.",
            "source": target}))
    totals = [i for i, s in enumerate(q.series) if s.math is None or s.math.value == "total"]
    if totals:
        target = copy.deepcopy(source)
        for i in totals:
            target["series"][i]["math"] = "dau"
        boost = -5.0 if any(_mentions(context, w) for w in ("users", "user", "people", "unique", "dau")) else 0.0
        ranked.append((2.0 + boost, {
            "title": f"Unique users who performed {name}",
            "description": (f"Counts distinct users per {interval} instead of total events, to tell more people "
                            "from more activity per person."),
            "source": target}))
    # No "funnel of the series' events" suggestion (§3.12) yet: the funnel engine does not exist, and a
    # suggestion that POST query/ rejects is worse than none. Add it here once FunnelsQuery runs.
    ranked.sort(key=lambda r: r[0])
    out = []
    for _, s in ranked:
        if _runnable(env, s["source"]):
            out.append({"title": s["title"], "description": s["description"],
                        "targetQuery": {"kind": "InsightVizNode", "source": s["source"]}})
    return out[:MAX_DERIVED]


async def suggest(session: AsyncSession, *, insight: Insight, environment: Environment,
                  clickhouse: ClickHouseExecutor, settings: Settings, context: str | None) -> list[dict[str, Any]]:
    query = insight.query
    if not isinstance(query, dict) or query.get("kind") != "InsightVizNode" or not isinstance(query.get("source"), dict):
        return []
    try:
        node = parse_query(query)
    except QueryError:
        return []  # a stored query we cannot read suggests nothing
    if not isinstance(node, InsightVizNode):
        return []
    source = query["source"]
    if source.get("kind") == "RetentionQuery":
        out = retention_suggestions(source)
    elif isinstance(node.source, TrendsQuery) and any(not isinstance(s, ActionsNode) for s in node.source.series):
        # Action series match nothing (there are no actions, QUERY_ENGINE.md §6): an insight made
        # only of them has no numbers to build on.
        out = await trends_suggestions(clickhouse, settings, environment, node.source, source, (context or "").lower())
    else:
        out = []
    return [SuggestionRead(**s).model_dump(mode="json") for s in out]

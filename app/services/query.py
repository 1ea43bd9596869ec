"""Run a query node now and build PostHog's query response.

`run_query` is the one entry point: the query endpoint calls it directly, and the insights
caching/refresh layer (spec/API.md §3.3) wraps it. `cache_key` is the pure key of §3.3.5.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.services.cohorts import cohort_ids, cohort_metadata
from app.services.definitions import property_types
from app.services.insight_cache import thresholds
from app.errors import QueryError, QueryTimeout, ServiceUnavailable
from app.models import Environment
from app.query_engine.dates import iso
from app.query_engine.executor.base import (
    ClickHouseCancelled, ClickHouseError, ClickHouseExecutor, ClickHouseTimeout, ClickHouseUnavailable, ExecuteSettings,
)
from app.query_engine.scope import Scope
from app.query_engine.trends.runner import TrendsRunner
from app.schemas.query import DataTableNode, DataVisualizationNode, InsightVizNode, TrendsQuery, parse_query
from app.schemas.query.insights import HogQLQuery
from app.schemas.query.base import PersonsOnEventsMode
from app.schemas.query.properties import PropertyFilterList
from app.settings import Settings

CACHE_FORMAT_VERSION = 2
DEFAULT_MODIFIERS: dict[str, Any] = {
    "personsOnEventsMode": PersonsOnEventsMode.person_id_override_properties_on_events.value,
    "personsArgMaxVersion": "auto",
    "inCohortVia": "auto",
    "materializationMode": "legacy_null_as_null",
    "propertyGroupsMode": "optimized",
    "sessionTableVersion": "auto",
    "convertToProjectTimezone": True,
    "bounceRatePageViewMode": "count_pageviews",
    "sessionsV2JoinMode": "string",
    "optimizeJoinedFilters": False,
    "useMaterializedViews": True,
}
HOGQL_MAX_RESULT_BYTES = 64 * 1024 * 1024


def unwrap(node: Any) -> Any:
    """The query actually executed: the source of a wrapper node."""
    if isinstance(node, (InsightVizNode, DataTableNode, DataVisualizationNode)):
        return node.source
    return node


def effective_modifiers(node: Any) -> dict[str, Any]:
    own = node.modifiers.model_dump(mode="json", exclude_none=True) if getattr(node, "modifiers", None) else {}
    return {**DEFAULT_MODIFIERS, **own}


def cache_key(*, environment: Environment, query_json: dict[str, Any]) -> str:
    """`cache_{env}_{sha256}` over the executed query (without tags and series custom names), the
    environment's timezone and week start, and the modifiers in effect (spec/API.md §3.3.5)."""
    node = unwrap(parse_query(query_json))
    data = node.model_dump(mode="json", exclude_none=True, exclude={"tags"})
    for series in data.get("series") or []:
        series.pop("custom_name", None)
    doc = {
        "query": data, "team_id": environment.id, "timezone": environment.timezone or "UTC",
        "week_start_day": environment.week_start_day or 0, "modifiers": effective_modifiers(node),
        "limit_context": "query", "version": CACHE_FORMAT_VERSION,
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"cache_{environment.id}_{digest}"


def _test_account_filters(environment: Environment) -> list[Any]:
    raw = environment.test_account_filters or []
    try:
        return PropertyFilterList(filters=raw).filters
    except ValueError:
        raise QueryError("The environment's test account filters are invalid.",
                         attr="environment.test_account_filters") from None


def _refresh_interval(interval: str, span: timedelta) -> timedelta:
    if interval == "minute":
        return timedelta(minutes=1)
    if interval == "hour" or span <= timedelta(days=7, seconds=1):
        return timedelta(minutes=3)
    return timedelta(minutes=15)


async def run_query(
    *,
    environment: Environment,
    query_json: dict[str, Any],
    clickhouse: ClickHouseExecutor,
    session: AsyncSession,
    settings: Settings,
    client_query_id: str | None = None,
    before_execute: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Compile and run `query_json` now (blocking) and return the query response dict.

    `before_execute` runs once, after the last PostgreSQL lookup and before ClickHouse is asked
    (the caller hands its database connection back there: a query can take seconds)."""
    node = unwrap(parse_query(query_json))
    if not isinstance(node, (TrendsQuery, HogQLQuery)):
        raise QueryError(f"{node.kind} queries are not supported yet.", attr="query.kind")
    modifiers = effective_modifiers(node)
    timezone = environment.timezone or "UTC"
    scope = Scope(
        team_id=environment.id,
        timezone=timezone if modifiers.get("convertToProjectTimezone", True) else "UTC",
        now=clock.now(),
        week_start_day=environment.week_start_day or 0,
        property_types=await property_types(session, environment.id),
        poe_mode=PersonsOnEventsMode(modifiers["personsOnEventsMode"]),
    )
    query_id = client_query_id or uuid.uuid4().hex
    exec_settings = ExecuteSettings(
        max_execution_time=settings.query_timeout_seconds,
        max_memory_usage=settings.query_max_memory_bytes,
        max_result_rows=settings.query_max_result_rows,
        # NULL-aware IN (§12.6); one query reads one snapshot of each table.
        extra={"transform_null_in": 1,
               # HogQL can build huge values in a few rows (range(1e8)): cap arrays and the answer's
               # size (max_result_bytes is enforced by a ClickHouse server; chDB ignores it).
               **({"max_result_bytes": HOGQL_MAX_RESULT_BYTES, "function_range_max_elements_in_block": 1_000_000}
                  if isinstance(node, HogQLQuery) else {})},
    )

    pending_release = [before_execute] if before_execute is not None else []

    async def execute(sql: str, params: dict[str, Any]):
        while pending_release:
            await pending_release.pop()()
        try:
            return await clickhouse.execute(sql, params, query_id=query_id, settings=exec_settings)
        except ClickHouseUnavailable:
            raise ServiceUnavailable("ClickHouse is unavailable; try again shortly.", code="clickhouse_unavailable") from None
        except ClickHouseCancelled:
            raise QueryError("The query was cancelled.", code="query_cancelled", attr="query") from None
        except ClickHouseTimeout:
            raise QueryTimeout(
                f"The query took longer than {settings.query_timeout_seconds} s and was stopped; "
                "narrow the date range or the filters.", code="query_timeout",
            ) from None
        except ClickHouseError as exc:
            raise QueryError(f"The query could not be run: {_first_line(str(exc))}", code="query_failed",
                             attr="query") from None

    if isinstance(node, HogQLQuery):
        return await _run_hogql(node, scope, execute, query_id, modifiers, environment, query_json,
                                max_length=settings.hogql_max_length)
    ids = cohort_ids(query_json, environment.test_account_filters or [])
    scope.cohorts = await cohort_metadata(session, environment.id, ids) if ids else {}
    runner = TrendsRunner(node, scope, _test_account_filters(environment))
    body = await runner.run(execute)
    now = clock.now()
    interval = node.interval.value if node.interval else "day"
    rng = body["resolved_date_range"]
    return {
        "results": body["results"],
        "hasMore": body["hasMore"],
        "hogql": ";\n\n".join(q.sql for q in runner.compiled),
        "timings": runner.timings,
        "modifiers": modifiers,
        "error": "",
        "resolved_date_range": rng,
        "timezone": timezone,
        "is_cached": False,
        "last_refresh": iso(now),
        "next_allowed_client_refresh": iso(now + _refresh_interval(interval, runner.span)),
        "cache_target_age": iso(now + thresholds(interval)[0]),
        "cache_key": cache_key(environment=environment, query_json=query_json),
        "query_status": None,
        "query_id": query_id,
    }


async def _run_hogql(node: HogQLQuery, scope: Scope, execute, query_id: str, modifiers: dict[str, Any],
                     environment: Environment, query_json: dict[str, Any], *, max_length: int) -> dict[str, Any]:
    """A HogQLQuery (alone or as the source of a DataTableNode/DataVisualizationNode), see app/hogql."""
    from app.hogql.query import run_hogql

    wrapped = query_json.get("kind") in ("DataTableNode", "DataVisualizationNode")
    prefix = "query.source" if wrapped else "query"
    body = await run_hogql(node.query, team_id=scope.team_id, timezone=scope.timezone,
                           property_types=scope.property_types, execute=execute, attr=f"{prefix}.query",
                           values=node.values, variables=node.variables, poe_mode=scope.poe_mode,
                           max_length=max_length)
    now = clock.now()
    return {
        **body, "modifiers": modifiers, "error": "", "timezone": environment.timezone or "UTC",
        "is_cached": False, "last_refresh": iso(now),
        "next_allowed_client_refresh": iso(now + timedelta(minutes=1)),
        "cache_target_age": iso(now + thresholds("minute")[0]),  # no date range: minute (§3.3.3)
        "cache_key": cache_key(environment=environment, query_json=query_json), "query_status": None,
        "query_id": query_id,
    }


def _first_line(message: str) -> str:
    # ClickHouse messages carry a stack trace after the first line; the first line says what failed.
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return line[:500]

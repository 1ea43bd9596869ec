"""The caching/refresh layer around `run_query` (spec/API.md §3.3–§3.4): one decision table shared by
the insight endpoints and `POST query/`."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from arq import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.errors import AppError, Throttled, ValidationFailed
from app.models import Environment
from app.query_engine.dates import iso
from app.query_engine.executor.base import ClickHouseExecutor
from app.services import insight_cache as cache
from app.services.coalescing import single_flight
from app.services.query import cache_key, run_query, unwrap
from app.schemas.query import parse_query
from app.settings import Settings

log = logging.getLogger(__name__)

RUNNING_TTL_MS = 120_000
RESULT_FIELDS = ("result", "hasMore", "columns", "hogql", "types", "resolved_date_range", "last_refresh",
                 "cache_target_age", "next_allowed_client_refresh")


class ConcurrencyLimitExceeded(Throttled):
    """Too many queries running for one environment: a 429 `throttled_error` (spec/API.md §1.1)
    that says why and when to retry; insight requests turn it into the §3.4 failure status."""

    default_detail = "Too many queries are running for this environment; try again shortly."


@dataclass
class Item:
    """One query to resolve: the effective query of an insight (None: the insight has no query)."""

    query: dict[str, Any] | None
    insight_id: int | None = None
    dashboard_id: int | None = None


def interval_of(query_json: dict[str, Any]) -> str | None:
    """The staleness interval (§3.3.3): the date-range interval; `minute` for queries without a
    date range (SQL); None (the unknown row) for a ranged query without an interval."""
    node = unwrap(parse_query(query_json))
    if "dateRange" not in type(node).model_fields:
        return "minute"
    interval = getattr(node, "interval", None)
    return getattr(interval, "value", interval) if interval is not None else None


def _ms(value: str | None) -> str | None:
    """Computed timestamps carry milliseconds (spec/API.md §1.1)."""
    parsed = cache.parse_dt(value)
    if parsed is None:
        return None
    text = parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text.replace(".000Z", "Z")


_KEY_MEMO: dict[bytes, str] = {}


def _cache_key(env: Environment, query_json: dict[str, Any]) -> str:
    """`cache_key`, memoised on its inputs: validating the query node costs more than a cached
    retrieve's own work, and the same insight is served over and over."""
    try:
        memo = orjson.dumps([env.id, env.timezone, env.week_start_day, query_json], option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return cache_key(environment=env, query_json=query_json)
    key = _KEY_MEMO.get(memo)
    if key is None:
        key = cache_key(environment=env, query_json=query_json)  # raises for invalid queries: not memoised
        if len(_KEY_MEMO) >= 10_000:
            _KEY_MEMO.clear()
        _KEY_MEMO[memo] = key
    return key


# Admission under the per-environment concurrency limit, in one round trip on Redis' own clock
# (expiries must advance even while the app clock is frozen in tests). Returns 1 if admitted.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('INCR', KEYS[2])
return 1
"""


def executions_key(environment_id: int) -> str:
    return f"query_executions:{environment_id}"


class QueryRunner:
    def __init__(self, *, environment: Environment, session: AsyncSession, clickhouse: ClickHouseExecutor,
                 redis: Redis, arq: ArqRedis, settings: Settings) -> None:
        self.env = environment
        self.session = session
        self.clickhouse = clickhouse
        self.redis = redis
        self.arq = arq
        self.settings = settings
        # When the request arrived (perf_counter): a coalesced result finished after that moment is
        # as fresh as our own. Turned into Redis time (shared by every process) only when computing.
        self.arrived_at: float | None = None
        # Set for GET requests, whose only writes are bookkeeping (view records, key last_used_at).
        self.release_session_before_compute = False
        # Called once a computation of this runner has finished (identical retrieves stop joining it).
        self.on_computed: Callable[[], None] | None = None
        # Keys read with the cache entries in the same Redis round trip (name → raw value, filled in).
        self.extra_reads: dict[str, Any] = {}
        # The Redis keys and raw values the last `resolve_many` read (None: it read nothing, or failed).
        self.last_read: tuple[list[str], list[Any]] | None = None

    # -- the decision table of §3.3.2 ------------------------------------------------------------
    async def resolve_many(self, items: list[Item], mode: str, *, requested: bool,
                           client_query_id: str | None = None) -> list[dict[str, Any]]:
        keys = [_cache_key(self.env, i.query) if i.query else None for i in items]
        present = [k for k in dict.fromkeys(keys) if k]
        self.last_read = None
        read: list[tuple[list[str], list[Any]]] = []
        try:
            # force_blocking looks at neither entries nor statuses; force_async only at statuses.
            entries, statuses = ({}, {}) if mode == cache.FORCE_BLOCKING else await cache.load_page(
                self.redis, self.env.id, present, with_entries=mode != cache.FORCE_ASYNC, extra=self.extra_reads,
                read=read)
            self.last_read = read[0] if read else None
        except RedisError:
            log.warning("redis unavailable: every insight is a cache miss")
            entries, statuses = {}, {}
        out = []
        for item, key in zip(items, keys):
            if key is None:
                out.append(self._empty(None, None, requested))
                continue
            out.append(await self._resolve(item, key, entries.get(key), statuses.get(key), mode, requested,
                                           client_query_id))
        return out

    async def _resolve(self, item: Item, key: str, entry: dict | None, status: dict | None, mode: str,
                       requested: bool, client_query_id: str | None) -> dict[str, Any]:
        assert item.query is not None
        if mode == cache.FORCE_ASYNC:
            started = await self._start(item, key)
            return {**self._empty(None, started, requested)}
        if mode == cache.FORCE_BLOCKING:
            return await self._compute(item, key, requested, client_query_id)
        if entry is not None:
            stale = cache.is_stale(entry, lazy=mode == cache.LAZY_ASYNC)
            if not stale or mode == cache.FORCE_CACHE:
                return self._hit(item, key, entry, status, requested)
            if mode == cache.BLOCKING:
                return await self._compute(item, key, requested, client_query_id)
            started = await self._start(item, key)
            return self._hit(item, key, entry, started, requested)
        if mode == cache.FORCE_CACHE:
            return self._empty(key, status, requested)
        if mode in (cache.BLOCKING, cache.ASYNC_EXCEPT_ON_CACHE_MISS):
            return await self._compute(item, key, requested, client_query_id)
        started = status or await self._start(item, key)
        return self._empty(key, started, requested)

    def _timezone(self, stored: str | None, requested: bool) -> str | None:
        return (self.env.timezone or "UTC") if requested else stored

    def _empty(self, key: str | None, status: dict | None, requested: bool) -> dict[str, Any]:
        return {**{f: None for f in RESULT_FIELDS}, "timezone": self._timezone(None, requested), "is_cached": False,
                "query_status": cache.public_status(status), "filters_hash": key}

    def _hit(self, item: Item, key: str, entry: dict, status: dict | None, requested: bool) -> dict[str, Any]:
        entry = cache.patch_custom_names(entry, item.query)  # freshly decoded for this request: safe to patch
        return self._fields(entry, key, requested, is_cached=True, status=status)

    def _fields(self, response: dict, key: str, requested: bool, *, is_cached: bool,
                status: dict | None = None) -> dict[str, Any]:
        return {
            "result": response.get("results"), "hasMore": response.get("hasMore"),
            "columns": response.get("columns"), "hogql": response.get("hogql"), "types": response.get("types"),
            "resolved_date_range": response.get("resolved_date_range"),
            "last_refresh": _ms(response.get("last_refresh")), "cache_target_age": _ms(response.get("cache_target_age")),
            "next_allowed_client_refresh": _ms(response.get("next_allowed_client_refresh")),
            "timezone": self._timezone(response.get("timezone"), requested), "is_cached": is_cached,
            "query_status": cache.public_status(status), "filters_hash": key,
        }

    # -- computing now -----------------------------------------------------------------------------
    async def execute(self, query_json: dict[str, Any], key: str, query_id: str | None) -> dict[str, Any]:
        """Run the query now, under the per-environment concurrency limit, and fill the cache.
        One Redis round trip before the query (admission) and one after (release and cache):
        coalesced followers wait on both."""
        running = f"query_running:{self.env.id}"
        member = query_id or uuid.uuid4().hex
        limit = self.settings.query_concurrency_limit
        try:
            admitted = await self.redis.register_script(_ADMIT)(
                keys=[running, executions_key(self.env.id)], args=[limit, RUNNING_TTL_MS, member])
        except RedisError:
            log.warning("redis unavailable: running without concurrency accounting")
            admitted = 1
        if not admitted:
            raise ConcurrencyLimitExceeded(headers={"Retry-After": "1"})
        try:
            response = await run_query(environment=self.env, query_json=query_json, clickhouse=self.clickhouse,
                                       session=self.session, settings=self.settings,
                                       client_query_id=self.engine_query_id(query_id) if query_id else None,
                                       before_execute=self._release_session)
        except BaseException:
            try:
                await self.redis.zrem(running, member)
            except RedisError:
                pass
            raise
        entry = cache.entry_payload(response, interval=interval_of(query_json))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(running, member)
                if entry is not None:
                    pipe.set(key, entry, ex=cache.CACHE_TTL_SECONDS)
                await pipe.execute()
        except RedisError:
            log.warning("redis unavailable: result not cached")
        return response

    async def compute_coalesced(self, query_json: dict[str, Any], key: str,
                                client_query_id: str | None) -> dict[str, Any]:
        return await single_flight(self.redis, key, lambda: self.execute(query_json, key, client_query_id),
                                   arrived_at=self.arrived_at, on_wait=self._release_session)

    async def _release_session(self) -> None:
        """Commit what a GET (or `POST query/`, which writes nothing) has read and written so far,
        handing its connection back to the pool before waiting for another request's computation or
        for ClickHouse: 50 requests waiting with a connection each would exhaust the pool (10+10),
        and the later ones could not even start their own checks. The session stays usable (a later statement checks out
        a connection again); expire_on_commit is off, so loaded objects keep their values."""
        if self.release_session_before_compute and self.session.in_transaction():
            await self.session.commit()

    async def _compute(self, item: Item, key: str, requested: bool, client_query_id: str | None) -> dict[str, Any]:
        assert item.query is not None
        try:
            response = await self.compute_coalesced(item.query, key, client_query_id)
        except ValidationFailed as exc:
            if exc.attr == "query.kind":
                # A kind the engine does not run yet is our limitation, not the user's error: a list
                # must not fail because of one such insight.
                return self._failure(item, client_query_id, exc.detail, last_refresh=None)
            raise  # user-fixable query errors fail the request (§3.4)
        except ConcurrencyLimitExceeded:
            return self._failure(item, client_query_id, "concurrency_limit_exceeded", last_refresh=iso(clock.now()))
        except AppError as exc:
            return self._failure(item, client_query_id, exc.detail, last_refresh=None)
        finally:
            if self.on_computed is not None:
                self.on_computed()
        response = cache.patch_custom_names(response, item.query)  # copy on write: followers share `response`
        return self._fields(response, key, requested, is_cached=False)

    def _failure(self, item: Item, client_query_id: str | None, message: str, *, last_refresh: str | None) -> dict:
        status = {name: None for name in cache.STATUS_FIELDS}
        status.update(id=client_query_id, team_id=self.env.id, insight_id=str(item.insight_id) if item.insight_id else None,
                      dashboard_id=str(item.dashboard_id) if item.dashboard_id else None, error=True,
                      error_message=message, complete=False, query_async=True)
        return {**{f: None for f in RESULT_FIELDS}, "last_refresh": last_refresh, "timezone": self.env.timezone or "UTC",
                "is_cached": False, "query_status": status, "filters_hash": None}

    # -- background calculations (§3.4) ------------------------------------------------------------
    async def _start(self, item: Item, key: str) -> dict[str, Any]:
        """Start (or, on a miss, reuse) a background calculation for `key`; never two jobs at once."""
        existing = await cache.load_status(self.redis, self.env.id, key)
        if existing is not None and not existing.get("complete"):
            return existing
        token = uuid.uuid4().hex
        # Concurrent starters of one key: one wins this lock, the others pick up the status it writes.
        start_lock = f"query_start:{self.env.id}:{key}"
        if not await self.redis.set(start_lock, token, nx=True, px=10_000):
            seen = existing.get("_token") if existing else None
            for _ in range(250):  # the winner's status, even if its (fast) job already finished
                current = await cache.load_status(self.redis, self.env.id, key)
                if current is not None and current.get("_token") != seen:
                    return current
                await asyncio.sleep(0.02)
        else:
            existing = await cache.load_status(self.redis, self.env.id, key)  # started while we took the lock
            if existing is not None and not existing.get("complete"):
                await self.redis.delete(start_lock)
                return existing
        try:
            return await self._enqueue(item, key, token)
        finally:
            await self.redis.delete(start_lock)

    async def _enqueue(self, item: Item, key: str, token: str) -> dict[str, Any]:
        status = cache.new_status(environment_id=self.env.id, query_id=key, insight_id=item.insight_id,
                                  dashboard_id=item.dashboard_id, token=token)
        job_id = f"refresh:{key}:{token}"
        status["task_id"] = job_id
        # Liveness first: a reader that sees an unfinished status without it declares the job dead.
        await self.redis.set(cache.alive_key(self.env.id, key), "queued", px=cache.QUEUED_ALIVE_TTL_MS)
        await cache.save_status(self.redis, status)
        from app.jobs.worker import QUEUE_NAME  # the worker module imports this one

        await self.arq.enqueue_job("refresh_query", self.env.id, key, item.query, token, _job_id=job_id,
                                   _queue_name=QUEUE_NAME)
        return status

    # -- cancel (§3.4, §3.13) ------------------------------------------------------------------------
    async def cancel(self, query_id: str) -> bool:
        """Stop a queued or running calculation: the status is completed as cancelled first (a queued
        job then exits on pick-up), then the running ClickHouse query is killed."""
        found = False
        status = await cache.load_status(self.redis, self.env.id, query_id)
        if status is not None and not status.get("complete"):
            await cache.finish_status(self.redis, status, error="Query cancelled.")
            found = True
        killed = False
        # Background calculations run under their cache key, which engine_query_id keeps as is.
        for candidate in {self.engine_query_id(query_id)}:
            try:
                killed = await self.clickhouse.cancel(candidate) or killed
            except ValueError:
                pass  # not a valid ClickHouse query id, so nothing can be running under it
        return found or killed

    def engine_query_id(self, client_query_id: str) -> str:
        """Client ids are prefixed with the environment, so a cancel can only reach this environment's queries."""
        if client_query_id.startswith(f"cache_{self.env.id}_"):
            return client_query_id
        return re.sub(r"[^A-Za-z0-9_\-:.]", "_", f"{self.env.id}:{client_query_id}")[:128]

    # -- POST query/ (the same cache and modes, PostHog's query response shape) -----------------------
    async def run_for_query_endpoint(self, query_json: dict[str, Any], *, refresh: Any,
                                     client_query_id: str | None) -> dict[str, Any]:
        """`refresh` absent or false means `blocking` here (PostHog's query endpoint default)."""
        if refresh is None or refresh is False or (isinstance(refresh, str) and refresh.lower() in ("false", "0", "no")):
            mode = cache.BLOCKING
        else:
            mode, _ = cache.parse_refresh(refresh)
        key = _cache_key(self.env, query_json)
        item = Item(query=query_json)
        entry = None
        if mode not in (cache.FORCE_ASYNC, cache.FORCE_BLOCKING):
            try:
                entry = (await cache.get_entries(self.redis, [key]))[0]
            except RedisError:  # blocking modes still compute; background modes fail below as before
                log.warning("redis unavailable: the query is a cache miss")
        if entry is not None and (mode == cache.FORCE_CACHE or not cache.is_stale(entry, lazy=mode == cache.LAZY_ASYNC)):
            hit = cache.patch_custom_names(entry, query_json)
            hit.pop("_interval", None)
            status = (await cache.load_statuses(self.redis, self.env.id, [key])).get(key)
            return {**hit, "is_cached": True, "query_status": cache.public_status(status)}
        if mode == cache.FORCE_CACHE:
            return {"results": None, "is_cached": False, "cache_key": key, "query_status": None}
        if mode in (cache.BLOCKING, cache.FORCE_BLOCKING) or (mode == cache.ASYNC_EXCEPT_ON_CACHE_MISS and entry is None):
            response = dict(cache.patch_custom_names(
                await self.compute_coalesced(query_json, key, client_query_id), query_json))
            if client_query_id:
                response["query_id"] = client_query_id  # the engine ran it under an environment-prefixed id
            return response
        status = await self._start(item, key)
        if entry is not None:
            stale = cache.patch_custom_names(entry, query_json)
            stale.pop("_interval", None)
            return {**stale, "is_cached": True, "query_status": cache.public_status(status)}
        return {"results": None, "is_cached": False, "cache_key": key, "query_status": cache.public_status(status)}

"""Result cache, refresh modes, staleness and background-calculation statuses (spec/API.md §3.3–§3.4).

Everything lives in Redis, namespaced by environment: cache entries under the cache key itself
(`cache_{env}_{sha256}`, 7 days), statuses under `query_status:{env}:{id}` (20 minutes after the last
write). Liveness of a running job is a separate short-lived key refreshed by the job, so a worker
that dies leaves a status that is detected as dead instead of "running" forever. Liveness uses Redis
TTLs, never the (possibly frozen) application clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis

from app import clock
from app.query_engine.dates import iso

CACHE_TTL_SECONDS = 7 * 24 * 3600
STATUS_TTL_SECONDS = 20 * 60
ALIVE_TTL_MS = 15_000          # a running job refreshes this every second
QUEUED_ALIVE_TTL_MS = 600_000  # how long a job may wait in the queue before it is considered lost

FORCE_CACHE, BLOCKING, ASYNC, LAZY_ASYNC = "force_cache", "blocking", "async", "lazy_async"
ASYNC_EXCEPT_ON_CACHE_MISS, FORCE_BLOCKING, FORCE_ASYNC = "async_except_on_cache_miss", "force_blocking", "force_async"
NAMED_MODES = {FORCE_CACHE, BLOCKING, ASYNC, LAZY_ASYNC, ASYNC_EXCEPT_ON_CACHE_MISS, FORCE_BLOCKING, FORCE_ASYNC}
BACKGROUND_MODES = {ASYNC, LAZY_ASYNC, ASYNC_EXCEPT_ON_CACHE_MISS, FORCE_ASYNC}

# interval → (default, lazy) staleness thresholds (§3.3.3)
_STALE = {
    "minute": (timedelta(minutes=5), timedelta(minutes=15)),
    "hour": (timedelta(hours=1), timedelta(hours=2)),
    "day": (timedelta(hours=6), timedelta(hours=12)),
    "week": (timedelta(days=1), timedelta(days=1)),
    "month": (timedelta(days=1), timedelta(days=1)),
}
_UNKNOWN = (timedelta(hours=6), timedelta(hours=12))

STATUS_FIELDS = (
    "id", "team_id", "insight_id", "dashboard_id", "query_async", "complete", "error", "error_message",
    "start_time", "pickup_time", "end_time", "expiration_time", "results", "task_id", "query_progress", "labels",
)


def parse_refresh(raw: Any) -> tuple[str, bool]:
    """(mode, requested): `requested` is False for "no refresh" (absent/false/0/no/unrecognised),
    which decides the `timezone` quirk of §3.1."""
    if raw is None or raw is False:
        return FORCE_CACHE, False
    if raw is True:
        return FORCE_BLOCKING, True
    text = str(raw)
    if text in NAMED_MODES:
        return text, True
    if text == "" or text.lower() in {"true", "1", "yes"}:
        return FORCE_BLOCKING, True
    return FORCE_CACHE, False


def parse_dt(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def thresholds(interval: str | None) -> tuple[timedelta, timedelta]:
    return _STALE.get(interval or "", _UNKNOWN)


def is_stale(entry: dict[str, Any], *, lazy: bool = False) -> bool:
    last_refresh = parse_dt(entry.get("last_refresh"))
    if last_refresh is None:
        return True
    rng = entry.get("resolved_date_range") or {}
    date_to = parse_dt(rng.get("date_to")) if isinstance(rng, dict) else None
    # A range entirely in the past cannot change any more.
    if date_to is not None and date_to < last_refresh - timedelta(seconds=10):
        return False
    default, lazy_threshold = thresholds(entry.get("_interval"))
    return clock.now() > last_refresh + (lazy_threshold if lazy else default)


def _loads(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # a corrupt entry is a miss
    return value if isinstance(value, dict) else None


async def get_entries(redis: Redis, keys: list[str]) -> list[dict[str, Any] | None]:
    """One round trip for a whole page of insights."""
    if not keys:
        return []
    return [_loads(raw) for raw in await redis.mget(keys)]


def entry_payload(response: dict[str, Any], *, interval: str | None) -> bytes | None:
    """The cache entry of a response, None for responses that are not cached."""
    if response.get("error"):
        return None  # results with errors are never cached (§3.3.2)
    entry = {**response, "_interval": interval}
    entry.pop("query_status", None)
    return orjson.dumps(entry)


async def set_entry(redis: Redis, key: str, response: dict[str, Any], *, interval: str | None) -> None:
    payload = entry_payload(response, interval=interval)
    if payload is not None:
        await redis.set(key, payload, ex=CACHE_TTL_SECONDS)


def status_key(environment_id: int, query_id: str) -> str:
    return f"query_status:{environment_id}:{query_id}"


def alive_key(environment_id: int, query_id: str) -> str:
    return f"query_alive:{environment_id}:{query_id}"


def public_status(status: dict[str, Any] | None, *, show_progress: bool = True) -> dict[str, Any] | None:
    if status is None:
        return None
    out = {name: status.get(name) for name in STATUS_FIELDS}
    if not show_progress:
        out.pop("query_progress", None)
    return out


def new_status(*, environment_id: int, query_id: str, insight_id: int | None, dashboard_id: int | None,
               token: str) -> dict[str, Any]:
    now = clock.now()
    return {
        "id": query_id, "team_id": environment_id, "insight_id": insight_id, "dashboard_id": dashboard_id,
        "query_async": True, "complete": False, "error": False, "error_message": None,
        "start_time": iso(now), "pickup_time": None, "end_time": None,
        "expiration_time": iso(now + timedelta(seconds=STATUS_TTL_SECONDS)), "results": None,
        "task_id": None, "query_progress": None, "labels": None, "_token": token,
    }


async def save_status(redis: Redis, status: dict[str, Any]) -> None:
    status["expiration_time"] = iso(clock.now() + timedelta(seconds=STATUS_TTL_SECONDS))
    await redis.set(status_key(status["team_id"], status["id"]), orjson.dumps(status), ex=STATUS_TTL_SECONDS)


async def load_status(redis: Redis, environment_id: int, query_id: str) -> dict[str, Any] | None:
    status = _loads(await redis.get(status_key(environment_id, query_id)))
    if status is None or status.get("complete"):
        return status
    # An unfinished status whose job stopped heartbeating belongs to a dead worker or a lost job.
    if not await redis.exists(alive_key(environment_id, query_id)):
        await finish_status(redis, status, error="The calculation stopped unexpectedly; request it again.")
    return status


async def load_statuses(redis: Redis, environment_id: int, query_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Unfinished statuses for a page of keys, in two round trips (dead ones are dropped)."""
    if not query_ids:
        return {}
    raws = await redis.mget([status_key(environment_id, q) for q in query_ids])
    alive = await redis.mget([alive_key(environment_id, q) for q in query_ids])
    out = {}
    for query_id, raw, is_alive in zip(query_ids, raws, alive):
        status = _loads(raw)
        if status is not None and not status.get("complete") and is_alive is not None:
            out[query_id] = status
    return out


async def load_page(redis: Redis, environment_id: int, keys: list[str], *, with_entries: bool,
                    extra: dict[str, Any] | None = None,
                    read: list[tuple[list[str], list[Any]]] | None = None,
                    ) -> tuple[dict[str, dict | None], dict[str, dict[str, Any]]]:
    """Cache entries and unfinished statuses of a whole page of keys in one round trip. The raw
    values of the keys of `extra` (if any) are read in the same round trip and stored into it.
    `read` (if given) receives the Redis keys read and their raw values: everything the result
    depends on, so a caller can tell later whether reading again would give the same answer."""
    extra_keys = list(extra) if extra else []
    if not keys and not extra_keys:
        return {}, {}
    entry_keys = keys if with_entries else []
    redis_keys = (entry_keys + [status_key(environment_id, k) for k in keys]
                  + [alive_key(environment_id, k) for k in keys] + extra_keys)
    raws = await redis.mget(redis_keys)
    if read is not None:
        read.append((redis_keys, list(raws)))
    if extra_keys:
        extra.update(zip(extra_keys, raws[len(raws) - len(extra_keys):]))
        raws = raws[:len(raws) - len(extra_keys)]
    n = len(entry_keys)
    entries = {k: _loads(raw) for k, raw in zip(entry_keys, raws[:n])}
    statuses = {}
    for key, raw, alive in zip(keys, raws[n:n + len(keys)], raws[n + len(keys):]):
        status = _loads(raw)
        if status is not None and not status.get("complete") and alive is not None:
            statuses[key] = status
    return entries, statuses


async def finish_status(redis: Redis, status: dict[str, Any], *, results: dict[str, Any] | None = None,
                        error: str | None = None, error_is_internal: bool = False) -> None:
    status.update(complete=True, end_time=iso(clock.now()), results=results,
                  error=error is not None or error_is_internal, error_message=error)
    await save_status(redis, status)
    await redis.delete(alive_key(status["team_id"], status["id"]))


def patch_custom_names(response: dict[str, Any], query_json: dict[str, Any] | None) -> dict[str, Any]:
    """Custom names are not part of the cache key, so cached series get the current ones (§3.3.5).

    Copy on write: `response` is never changed (coalesced requests share one), and when no name
    differs it is returned as is."""
    source = query_json.get("source") if isinstance(query_json, dict) and "source" in query_json else query_json
    series = source.get("series") if isinstance(source, dict) else None
    results = response.get("results")
    if not isinstance(series, list) or not isinstance(results, list):
        return response
    patched: list[Any] | None = None
    for index, item in enumerate(results):
        action = item.get("action") if isinstance(item, dict) else None
        if isinstance(action, dict) and isinstance(action.get("order"), int) and action["order"] < len(series):
            node = series[action["order"]]
            name = node.get("custom_name") if isinstance(node, dict) else None
            if "custom_name" in action and action["custom_name"] == name:
                continue
            if patched is None:
                patched = list(results)
            patched[index] = {**item, "action": {**action, "custom_name": name}}
    return response if patched is None else {**response, "results": patched}

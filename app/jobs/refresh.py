"""Background calculation of one cache key (spec/API.md §3.4), run by the arq worker.

The job takes ids and the query JSON, reloads the environment, and is idempotent: it only runs for
the status generation (`token`) that enqueued it, and exits when that status is already complete
(finished, failed or cancelled). While the query runs it refreshes a liveness key every second and
copies the engine's progress into the status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from app.errors import AppError
from app.models import Environment
from app.services import insight_cache as cache
from app.services.query_runner import QueryRunner

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 0.5


async def _watch(ctx: dict[str, Any], status: dict[str, Any]) -> None:
    redis = ctx["redis"]
    clickhouse = ctx["clickhouse"]
    while True:
        await redis.set(cache.alive_key(status["team_id"], status["id"]), "running", px=cache.ALIVE_TTL_MS)
        with contextlib.suppress(Exception):
            progress = await clickhouse.progress(status["id"])
            if progress is not None:
                current = await cache.load_status(redis, status["team_id"], status["id"])
                if current is None or current.get("complete") or current.get("_token") != status["_token"]:
                    return
                current["query_progress"] = {
                    "bytes_read": progress.bytes_read, "rows_read": progress.rows_read,
                    "estimated_rows_total": progress.total_rows_approx,
                    "time_elapsed": int(progress.elapsed * 1_000_000), "active_cpu_time": 0,
                }
                await cache.save_status(redis, current)
        await asyncio.sleep(PROGRESS_SECONDS)


async def refresh_query(ctx: dict[str, Any], environment_id: int, key: str, query_json: dict[str, Any],
                        token: str) -> str:
    redis = ctx["redis"]
    status = await cache.load_status(redis, environment_id, key)
    if status is None or status.get("_token") != token or status.get("complete"):
        return "skipped"
    from app import clock
    from app.query_engine.dates import iso

    status["pickup_time"] = iso(clock.now())
    await cache.save_status(redis, status)
    watcher = asyncio.create_task(_watch(ctx, status))
    try:
        async with ctx["sessionmaker"]() as session:
            environment = await session.get(Environment, environment_id)
            if environment is None:
                await cache.finish_status(redis, status, error="The environment no longer exists.")
                return "missing"
            runner = QueryRunner(environment=environment, session=session, clickhouse=ctx["clickhouse"],
                                 redis=redis, arq=redis, settings=ctx["backends"].settings)
            try:
                response = await runner.compute_coalesced(query_json, key, key)
            except AppError as exc:
                outcome, results, error, internal = "failed", None, (exc.detail if exc.status_code < 500 else None), exc.status_code >= 500
            except Exception:  # the job must record every failure in the status, never die silently
                log.exception("background calculation failed", extra={"query_id": key})
                outcome, results, error, internal = "failed", None, None, True
            else:
                outcome, results, error, internal = "done", response, None, False
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    current = await cache.load_status(redis, environment_id, key)
    if current is not None and current.get("_token") == token and current.get("complete"):
        return "cancelled"  # a cancel won the race; keep its status
    await cache.finish_status(redis, status, results=results, error=error, error_is_internal=internal)
    return outcome

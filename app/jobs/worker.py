"""arq worker: `python -m app worker` in production, or inside the API process when ClickHouse is
embedded (chDB's data dir belongs to one process)."""

from __future__ import annotations

import logging
from typing import Any

from arq.worker import Worker

from app import clock
from app.backends import Backends, arq_settings
from app.settings import Settings

log = logging.getLogger(__name__)

QUEUE_NAME = "tally:queue"


async def heartbeat(ctx: dict[str, Any], token: str) -> dict[str, str]:
    """Round-trip job used by readiness checks and tests to prove a worker is consuming the queue."""
    await ctx["redis"].set(f"tally:heartbeat:{token}", clock.now().isoformat(), ex=300)
    return {"token": token, "at": clock.now().isoformat()}


from app.jobs.refresh import refresh_query  # noqa: E402  (job modules import services)

FUNCTIONS = [heartbeat, refresh_query]


def build_worker(backends: Backends, *, burst: bool = False) -> Worker:
    """A worker sharing an already open set of backends (in-process mode)."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["backends"] = backends
        ctx["sessionmaker"] = backends.sessionmaker
        ctx["clickhouse"] = backends.clickhouse

    return Worker(
        functions=FUNCTIONS,
        redis_pool=backends.arq,
        queue_name=QUEUE_NAME,
        on_startup=on_startup,
        burst=burst,
        handle_signals=False,
        max_jobs=4,
        job_timeout=3600,
        keep_result=3600,
        max_tries=3,
    )


class WorkerSettings:
    """For the `arq` CLI and `python -m app worker`: opens its own backends."""

    functions = FUNCTIONS
    queue_name = QUEUE_NAME
    max_jobs = 4
    job_timeout = 3600
    keep_result = 3600
    max_tries = 3

    @staticmethod
    async def on_startup(ctx: dict[str, Any]) -> None:
        settings = Settings()
        backends = await Backends.open(settings, run_migrations=False)
        ctx["backends"] = backends
        ctx["sessionmaker"] = backends.sessionmaker
        ctx["clickhouse"] = backends.clickhouse

    @staticmethod
    async def on_shutdown(ctx: dict[str, Any]) -> None:
        backends = ctx.get("backends")
        if backends is not None:
            await backends.close()



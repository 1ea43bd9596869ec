"""`create_app(settings)`: the FastAPI application; the lifespan opens the backends onto app.state."""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from app import clock
from app.backends import Backends
from app.errors import install_error_handlers
from app.middleware import BodyLimitMiddleware, RequestContextMiddleware, TrailingSlashMiddleware
from app.ratelimit import RateLimiter
from app.routers import environments, health
from app.routers import query as query_router
from app.routers import capture, definitions
from app.routers import elements as elements_router
from app.routers import dashboards, insights, query_status
from app.settings import Settings

log = logging.getLogger(__name__)

API_DESCRIPTION = (
    "PostHog-compatible Insights and Elements API. Authenticate with a personal API key: "
    "`Authorization: Bearer phx_…`."
)


async def _first_start(backends: Backends) -> None:
    """On the very first start create a default organization, environment, user and key, print
    them and keep them in `$APP_DATA_DIR/credentials.json` (mode 0600)."""
    from app.services.bootstrap import bootstrap, has_any_organization

    async with backends.sessionmaker() as session:
        if await has_any_organization(session):
            return
        creds = await bootstrap(session)
        await session.commit()
    path = backends.settings.data_path / "credentials.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds.as_dict(), fh, indent=2)
    os.chmod(path, 0o600)
    print(
        "\nTally first start: created a default organization, environment, user and API key\n"
        f"  environment id:    {creds.environment_id}\n"
        f"  project API key:   {creds.project_api_key}   (for SDKs / capture)\n"
        f"  personal API key:  {creds.personal_api_key}   (Authorization: Bearer …)\n"
        f"  user:              {creds.user_email}\n"
        f"  saved to:          {path}\n",
        flush=True,
    )
    if backends.settings.demo_events > 0:
        from app.demo import generate_demo_data

        print(f"Generating {backends.settings.demo_events:,} demo events for environment {creds.environment_id}"
              " (set APP_DEMO_EVENTS=0 to skip)", flush=True)
        await generate_demo_data(backends.clickhouse, backends.sessionmaker, environment_id=creds.environment_id,
                                 events=backends.settings.demo_events)


def _declare_environment_id(operation: dict) -> None:
    """`authorize` reads `environment_id` from the path itself (a bad one is 404 `Project not found.`,
    not a 400), so FastAPI never sees it as a parameter; without this the path template names a
    parameter the operation does not define, which breaks generated clients and schema fuzzers."""
    params = operation.setdefault("parameters", [])
    if not any(p.get("in") == "path" and p.get("name") == "environment_id" for p in params):
        params.insert(0, {"name": "environment_id", "in": "path", "required": True,
                          "schema": {"type": "integer", "title": "Environment Id"}})


def _validation_errors_are_400(operation: dict) -> None:
    """FastAPI documents request validation as 422 `HTTPValidationError`; our handler answers those
    with 400 in the error envelope (spec/API.md §1.6), so document what is actually sent."""
    responses = operation.get("responses", {})
    if responses.pop("422", None) is not None and "400" not in responses:
        responses["400"] = {"description": "Validation error", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


# Allocations between two young-generation collections (CPython's default is 700). Requests
# free almost everything they allocate by reference counting; collecting every 700 allocations
# mostly rescans live objects, and under load those passes added up to tens of milliseconds on the
# event loop. Cyclic garbage still goes at the next pass, at most this many allocations later.
GC_YOUNG_THRESHOLD = 50_000
# How long the thread holding the GIL keeps it once another thread asks for it (CPython's default
# is 5 ms). Each chDB insert releases and re-takes the GIL three times (send, append, finish), and a
# query thread parsing a result holds it against the event loop; with the event loop busy, each
# hand-over could wait the whole interval. At 0.3 ms the mixed load benchmark improved on every
# figure at both levels, and /batch/ alone gained a little at most (benchmarks/RESULTS.md, session 6).
# Threads that do not ask for the GIL (chDB's own) are not affected.
GIL_SWITCH_INTERVAL_SECONDS = 0.0003


def tune_interpreter() -> None:
    """Once startup is done (a served app's lifespan; benchmarks that pass their own backends call it
    the same way): what startup built (modules, schemas, routes) lives as long as the process, so
    it is frozen out of every later collection; young collections run less often; and the GIL
    changes hands sooner when a worker thread asks for it."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)


class TallyApp(FastAPI):
    """FastAPI with a short way in for capture POSTs (`capture.direct_post`): they keep the request
    context (request id, security headers, access log, the 500 envelope) and skip everything else.
    Every other request, and capture's GET/OPTIONS, goes through the full stack."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._direct_capture = RequestContextMiddleware(capture.direct_post)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in capture.DIRECT_POST:
            scope["app"] = self
            await self._direct_capture(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, backends: Backends | None = None, first_start: bool = False) -> FastAPI:
    """Build the app. With `backends` given (tests), the caller owns them; otherwise the lifespan
    opens and closes them."""
    if settings.frozen_now is not None:
        clock.freeze(settings.frozen_now)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = backends is None
        opened = backends or await Backends.open(settings)
        worker_task = None
        worker = None
        try:
            app.state.settings = settings
            app.state.backends = opened
            app.state.engine = opened.engine
            app.state.sessionmaker = opened.sessionmaker
            app.state.clickhouse = opened.clickhouse
            app.state.redis = opened.redis
            app.state.arq = opened.arq
            app.state.rate_limiter = RateLimiter(settings, opened.redis_url, redis=opened.redis)
            # Capture's micro-batching writer; stopped (flushing everything accepted) before the backends close.
            from app.ingestion.service import Ingestion

            app.state.ingestion = ingestion = Ingestion(opened.clickhouse, opened.sessionmaker, opened.redis)
            ingestion.start()
            if first_start:
                await _first_start(opened)
            if settings.run_inprocess_worker:
                from app.jobs.worker import build_worker

                worker = build_worker(opened)
                worker_task = asyncio.create_task(worker.async_run(), name="arq-worker")
            if owned:
                # Modules imported on first use (HogQL pulls in sqlglot's dialects, ~50 ms) would
                # stall the event loop under traffic: import them now.
                for module in ("app.hogql.query", "app.services.insight_analysis", "app.services.insight_suggestions"):
                    importlib.import_module(module)

                tune_interpreter()
            yield
        finally:
            if getattr(app.state, "ingestion", None) is not None:
                await app.state.ingestion.stop()
            if worker is not None:
                await worker.close()
            if worker_task is not None:
                worker_task.cancel()
                await asyncio.gather(worker_task, return_exceptions=True)
            if owned:
                await opened.close()

    app = TallyApp(
        title="Tally",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    # Insights first: route matching scans routers in order, and cached insight reads are the
    # most frequent requests (their paths overlap no other router's).
    app.include_router(insights.router)
    app.include_router(environments.router)
    app.include_router(query_router.router)
    app.include_router(capture.router)
    app.include_router(definitions.router)
    app.include_router(elements_router.router)
    app.include_router(dashboards.router)
    app.include_router(query_status.router)

    # Outermost last: request context wraps everything, then size limits, then slash handling.
    app.add_middleware(TrailingSlashMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["PersonalAPIKey"] = {
            "type": "http", "scheme": "bearer", "description": "Personal API key (phx_…)",
        }
        for path, methods in schema.get("paths", {}).items():
            if path.startswith("/api/"):
                for operation in methods.values():
                    operation["security"] = [{"PersonalAPIKey": []}]
                    if "{environment_id}" in path:
                        _declare_environment_id(operation)
            for operation in methods.values():
                _validation_errors_are_400(operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app

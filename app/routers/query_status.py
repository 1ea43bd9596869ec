"""Polling and cancelling background calculations (spec/API.md §3.4)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.deps import Context, SessionDep, authorize
from app.errors import NotFound, error_responses
from app.services import insight_cache as cache
from app.services.insights_views import make_runner
from app.schemas.insights import truthy

router = APIRouter(prefix="/api/environments/{environment_id}/query", tags=["query"])

ReadCtx = Annotated[Context, authorize("query:read", throttle="insight")]


@router.get("/{query_id}/", responses=error_responses(403, 404, 429))
async def get_query_status(request: Request, query_id: str, ctx: ReadCtx) -> Response:
    """Status of a background calculation: 202 running, 200 done, 400/500 failed, 404 unknown."""
    status = await cache.load_status(request.app.state.redis, ctx.env.id, query_id)
    if status is None:
        raise NotFound()
    public = cache.public_status(status, show_progress=truthy(request.query_params.get("show_progress")))
    if not status.get("complete"):
        code = 202
    elif not status.get("error"):
        code = 200
    else:
        code = 400 if status.get("error_message") else 500
    return Response(orjson.dumps({"query_status": public}), status_code=code, media_type="application/json")


@router.delete("/{query_id}/", status_code=204, responses=error_responses(403, 404, 429))
async def cancel_query(request: Request, query_id: str, session: SessionDep, ctx: ReadCtx) -> Response:
    """Cancel a queued or running calculation."""
    # 404 like GET when this environment has no such calculation: another environment's query id
    # (a cache key) must not get a success answer here, even though cancel() could not reach it.
    known = await cache.load_status(request.app.state.redis, ctx.env.id, query_id) is not None
    if not await make_runner(request, session, ctx).cancel(query_id) and not known:
        raise NotFound()
    return Response(status_code=204)

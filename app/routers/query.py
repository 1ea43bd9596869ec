from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from app.deps import ClickHouseDep, Context, SessionDep, SettingsDep, authorize
from app.errors import error_responses
from app.schemas.query_api import QueryRequest
from app.services.query import run_query

router = APIRouter(prefix="/api/environments", tags=["query"])

QueryCtx = Annotated[Context, authorize("query:read", throttle="insight")]


@router.post("/{environment_id}/query/", responses=error_responses(400, 403, 404, 429, 504))
async def create_query(
    request: Request, body: QueryRequest, ctx: QueryCtx, session: SessionDep, clickhouse: ClickHouseDep, settings: SettingsDep
) -> dict[str, Any]:
    """Run a query (e.g. a TrendsQuery or an InsightVizNode) now and return its results."""
    # Cached and refreshed like insights (spec/API.md §3.3): the cache is shared with insight endpoints.
    from app.services.query_runner import QueryRunner

    runner = QueryRunner(environment=ctx.env, session=session, clickhouse=clickhouse, redis=request.app.state.redis,
                         arq=request.app.state.arq, settings=settings)
    runner.release_session_before_compute = True  # nothing is written: free the connection while ClickHouse runs
    refresh = "async" if body.refresh is None and body.async_ else body.refresh
    return await runner.run_for_query_endpoint(body.query, refresh=refresh, client_query_id=body.client_query_id)

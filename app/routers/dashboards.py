"""Dashboards (the subset the insights API depends on): list, create, retrieve, update, soft delete."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request

from app.deps import Context, SessionDep, authorize
from app.errors import ParseError, ValidationFailed, error_responses
from app.pagination import Page
from app.services import dashboards as service
from app.services import insights_snapshot as snapshots

router = APIRouter(prefix="/api/environments/{environment_id}/dashboards", tags=["dashboards"])

ReadCtx = Annotated[Context, authorize("dashboard:read", throttle="default")]
WriteCtx = Annotated[Context, authorize("dashboard:write", throttle="default")]
ERRORS = error_responses(400, 403, 404, 415, 429)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None
    if not isinstance(body, dict):
        raise ValidationFailed("Invalid data. Expected a dictionary.", code="invalid_input")
    return body


def _id(raw: str) -> int:
    from app.errors import NotFound

    if not raw.isdigit() or len(raw) > 9:
        raise NotFound()
    return int(raw)


@router.get("/", responses=ERRORS)
async def list_dashboards(request: Request, session: SessionDep, ctx: ReadCtx) -> dict:
    """Dashboards of this environment."""
    page = Page.from_request(request)
    count, rows = await service.list_dashboards(session, ctx.env.id, limit=page.limit, offset=page.offset)
    next_url, previous_url = page.links(request, count)
    return {"count": count, "next": next_url, "previous": previous_url,
            "results": [service.dashboard_repr(d) for d in rows]}


@router.post("/", status_code=201, responses=ERRORS)
async def create_dashboard(request: Request, session: SessionDep, ctx: WriteCtx) -> dict:
    """Create a dashboard."""
    snapshots.bind(request.app.state.redis)
    dashboard = await service.create_dashboard(session, environment_id=ctx.env.id, user=ctx.user,
                                               data=await _body(request))
    return service.dashboard_repr(dashboard, [])


@router.get("/{dashboard_id}/", responses=ERRORS)
async def retrieve_dashboard(dashboard_id: str, session: SessionDep, ctx: ReadCtx) -> dict:
    """A dashboard with its tiles."""
    dashboard = await service.get_dashboard(session, ctx.env.id, _id(dashboard_id))
    return service.dashboard_repr(dashboard, await service.tiles_with_insights(session, [dashboard.id]))


@router.patch("/{dashboard_id}/", responses=ERRORS)
async def update_dashboard(request: Request, dashboard_id: str, session: SessionDep, ctx: WriteCtx) -> dict:
    """Update name, description, filters, variables, tiles (color, layouts, overrides); `deleted` soft-deletes."""
    snapshots.bind(request.app.state.redis)  # tiles change what insight retrieves show: tell other processes
    dashboard = await service.get_dashboard(session, ctx.env.id, _id(dashboard_id))
    dashboard = await service.update_dashboard(session, dashboard=dashboard, data=await _body(request))
    tiles = await service.tiles_with_insights(session, [dashboard.id]) if not dashboard.deleted else []
    return service.dashboard_repr(dashboard, tiles)

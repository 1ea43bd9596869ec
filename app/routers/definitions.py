from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from app.deps import ClickHouseDep, Context, SessionDep, authorize
from app.errors import error_responses
from app.pagination import Page
from app.schemas.common import Paginated
from app.schemas.definitions import (
    EventDefinitionRead, PropertyDefinitionRead, PropertyDefinitionUpdate, PropertyType,
)
from app.services import definitions as service

router = APIRouter(prefix="/api/environments/{environment_id}", tags=["definitions"])

PropReadCtx = Annotated[Context, authorize("property_definition:read", throttle="default")]
PropWriteCtx = Annotated[Context, authorize("property_definition:write", throttle="default")]
EventReadCtx = Annotated[Context, authorize("event_definition:read", throttle="default")]


def _read(definition) -> PropertyDefinitionRead:
    return PropertyDefinitionRead(
        id=definition.id, name=definition.name, type=service.TYPE_NAMES.get(definition.type, "event"),
        property_type=definition.property_type, is_numerical=definition.is_numerical,
        created_at=definition.created_at, updated_at=definition.updated_at,
    )


@router.get("/property_definitions/", response_model=Paginated[PropertyDefinitionRead],
            responses=error_responses(400, 403, 404, 429))
async def list_property_definitions(
    request: Request, session: SessionDep, ctx: PropReadCtx,
    search: str | None = None, type: Literal["event", "person", "group", "session"] = "event",
    property_type: Annotated[PropertyType | None, Query()] = None,
) -> dict:
    """Properties seen in this environment with their inferred or set types."""
    page = Page.from_request(request)
    count, rows = await service.list_property_definitions(
        session, environment_id=ctx.env.id, kind=service.TYPE_CODES[type], search=search,
        property_type=property_type, limit=page.limit, offset=page.offset,
    )
    return page.envelope(request, count, [_read(r) for r in rows])


@router.patch("/property_definitions/{definition_id}/", response_model=PropertyDefinitionRead,
              responses=error_responses(400, 403, 404, 429))
async def update_property_definition(
    definition_id: int, body: PropertyDefinitionUpdate, session: SessionDep, ctx: PropWriteCtx,
) -> PropertyDefinitionRead:
    """Change a property's type (String, Numeric, Boolean, DateTime, Duration)."""
    definition = await service.update_property_type(
        session, environment_id=ctx.env.id, definition_id=definition_id, property_type=body.property_type
    )
    return _read(definition)


@router.get("/event_definitions/", response_model=Paginated[EventDefinitionRead],
            responses=error_responses(403, 404, 429))
async def list_event_definitions(
    request: Request, session: SessionDep, clickhouse: ClickHouseDep, ctx: EventReadCtx, search: str | None = None,
) -> dict:
    """Events seen in this environment with their 30-day volume and last-seen time."""
    page = Page.from_request(request)
    count, rows = await service.list_event_definitions(
        session, clickhouse, environment_id=ctx.env.id, search=search, limit=page.limit, offset=page.offset
    )
    return page.envelope(request, count, rows)

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request

from app.deps import ClickHouseDep, Context, SessionDep, authorize
from app.errors import ValidationFailed, error_responses
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
    group_type_index: Annotated[int | None, Query(ge=0, le=4)] = None,
    properties: Annotated[str | None, Query(description="Comma-separated names to return")] = None,
    is_numerical: bool | None = None,
    excluded_properties: Annotated[str | None, Query(description="JSON list of names to leave out")] = None,
) -> dict:
    """Properties seen in this environment with their inferred or set types."""
    if (type == "group") != (group_type_index is not None):
        raise ValidationFailed("`group_type_index` must be set for the `group` type, and only for it.",
                               attr="group_type_index")
    excluded: list[str] = []
    if excluded_properties:
        try:
            excluded = [str(name) for name in orjson.loads(excluded_properties)]
        except (orjson.JSONDecodeError, TypeError):
            raise ValidationFailed("`excluded_properties` must be a JSON list of names.",
                                   attr="excluded_properties") from None
    page = Page.from_request(request)
    count, rows = await service.list_property_definitions(
        session, environment_id=ctx.env.id, kind=service.TYPE_CODES[type], search=search,
        property_type=property_type, limit=page.limit, offset=page.offset, group_type_index=group_type_index,
        names=[n for n in properties.split(",") if n] if properties else None, numerical_only=is_numerical is True,
        excluded=excluded,
    )
    return page.envelope(request, count, [_read(r) for r in rows])


@router.get("/property_definitions/{definition_id}/", response_model=PropertyDefinitionRead,
            responses=error_responses(403, 404, 429))
async def get_property_definition(definition_id: int, session: SessionDep, ctx: PropReadCtx) -> PropertyDefinitionRead:
    """One property definition."""
    return _read(await service.get_property_definition(session, environment_id=ctx.env.id,
                                                       definition_id=definition_id))


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

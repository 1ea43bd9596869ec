from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from sqlalchemy import select

from app.deps import Context, SessionDep, authorize
from app.errors import PermissionDenied, error_responses
from app.models import Environment, OrganizationMembership
from app.pagination import Page
from app.schemas.common import Paginated
from app.schemas.environments import EnvironmentCreate, EnvironmentRead, EnvironmentUpdate
from app.services import environments as service

router = APIRouter(prefix="/api/environments", tags=["environments"])

ReadCtx = Annotated[Context, authorize("project:read", throttle="default")]
WriteCtx = Annotated[Context, authorize("project:write", throttle="default")]
ListCtx = Annotated[Context, authorize("project:read", environment=False, throttle="default")]
CreateCtx = Annotated[Context, authorize("project:write", environment=False, throttle="default")]


async def _read(session: SessionDep, env: Environment) -> EnvironmentRead:
    return EnvironmentRead(
        id=env.id, uuid=env.uuid, organization=await service.organization_uuid(session, env), project_id=env.id,
        name=env.name, api_token=env.api_token, timezone=env.timezone, week_start_day=env.week_start_day,
        test_account_filters=env.test_account_filters, created_at=env.created_at, updated_at=env.updated_at,
    )


@router.get("/", response_model=Paginated[EnvironmentRead], responses=error_responses(403, 429))
async def list_environments(request: Request, session: SessionDep, ctx: ListCtx) -> dict:
    """Environments of the caller's organizations that the key may reach."""
    page = Page.from_request(request)
    count, envs = await service.list_environments(
        session, user=ctx.user, scoped_teams=ctx.principal.key.scoped_teams, limit=page.limit, offset=page.offset
    )
    return page.envelope(request, count, [await _read(session, env) for env in envs])


@router.post("/", status_code=201, response_model=EnvironmentRead, responses=error_responses(400, 403, 429))
async def create_environment(body: EnvironmentCreate, session: SessionDep, ctx: CreateCtx) -> EnvironmentRead:
    """Create an environment in the caller's current organization."""
    org_id = ctx.user.current_organization_id or await session.scalar(
        select(OrganizationMembership.organization_id).where(OrganizationMembership.user_id == ctx.user.id).limit(1)
    )
    if org_id is None:
        raise PermissionDenied("You don't belong to any organization.")
    if ctx.principal.key.scoped_organizations and org_id not in ctx.principal.key.scoped_organizations:
        raise PermissionDenied("API key does not have access to the requested organization.")
    env = await service.create_environment(session, organization_id=org_id, data=body)
    return await _read(session, env)


@router.get("/{environment_id}/", response_model=EnvironmentRead, responses=error_responses(403, 404, 429))
async def get_environment(session: SessionDep, ctx: ReadCtx) -> EnvironmentRead:
    """One environment with its API token, timezone and test-account filters."""
    return await _read(session, ctx.env)


@router.patch("/{environment_id}/", response_model=EnvironmentRead, responses=error_responses(400, 403, 404, 429))
async def update_environment(body: EnvironmentUpdate, session: SessionDep, ctx: WriteCtx) -> EnvironmentRead:
    """Change an environment's name, timezone, week start day or test-account filters."""
    env = await service.update_environment(session, environment=ctx.env, data=body)
    return await _read(session, env)

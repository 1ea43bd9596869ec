"""Environments (PostHog teams): create, list, read and update within an organization."""

from __future__ import annotations

import secrets

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.models import Environment, Organization, OrganizationMembership, User
from app.schemas.environments import EnvironmentCreate, EnvironmentUpdate


def generate_api_token() -> str:
    return "phc_" + secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")[:43]


def _user_environments(user: User) -> Select[tuple[Environment]]:
    member_orgs = select(OrganizationMembership.organization_id).where(OrganizationMembership.user_id == user.id)
    return select(Environment).where(Environment.organization_id.in_(member_orgs))


async def list_environments(
    session: AsyncSession, *, user: User, scoped_teams: list[int] | None, limit: int, offset: int
) -> tuple[int, list[Environment]]:
    query = _user_environments(user)
    if scoped_teams:
        query = query.where(Environment.id.in_(scoped_teams))
    count = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = (await session.scalars(query.order_by(Environment.id).limit(limit).offset(offset))).all()
    return int(count or 0), list(rows)


async def create_environment(
    session: AsyncSession, *, organization_id: int, data: EnvironmentCreate
) -> Environment:
    env = Environment(
        organization_id=organization_id,
        name=data.name,
        api_token=generate_api_token(),
        timezone=data.timezone or "UTC",
        week_start_day=data.week_start_day,
        test_account_filters=data.test_account_filters or [],
    )
    session.add(env)
    await session.flush()
    return env


async def update_environment(session: AsyncSession, *, environment: Environment, data: EnvironmentUpdate) -> Environment:
    # The caller's environment may be a shared, detached row of the authentication cache: change
    # this session's own copy (the flush then empties that cache, see app/auth.py).
    environment = await session.get(Environment, environment.id) or environment
    changes = data.model_dump(exclude_unset=True)
    for field in ("name", "timezone", "test_account_filters"):
        if field in changes and changes[field] is not None:
            setattr(environment, field, changes[field])
    if "week_start_day" in changes:
        environment.week_start_day = changes["week_start_day"]
    await session.flush()
    return environment


async def organization_uuid(session: AsyncSession, environment: Environment) -> object:
    org = await session.get(Organization, environment.organization_id)
    if org is None:
        raise NotFound()
    return org.uuid

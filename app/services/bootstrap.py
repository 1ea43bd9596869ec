"""Create an organization, environment, user and personal API key in one go (CLI `bootstrap`,
first start of `serve`, and tests)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import auth
from app.models import Environment, Organization, OrganizationMembership, PersonalAPIKey, User
from app.services.environments import generate_api_token

OWNER_LEVEL = 15


@dataclass(frozen=True)
class Credentials:
    organization_id: str
    environment_id: int
    project_api_key: str
    personal_api_key: str
    user_email: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


async def create_user(
    session: AsyncSession, *, organization: Organization, email: str | None = None, level: int = OWNER_LEVEL,
    first_name: str = "",
) -> User:
    user = User(
        email=email or f"user-{secrets.token_hex(6)}@tally.local",
        distinct_id=secrets.token_urlsafe(24),
        first_name=first_name,
        is_email_verified=None,
        current_organization_id=organization.id,
    )
    session.add(user)
    await session.flush()
    session.add(OrganizationMembership(organization_id=organization.id, user_id=user.id, level=level))
    await session.flush()
    return user


async def create_personal_api_key(
    session: AsyncSession, *, user: User, label: str = "bootstrap", scopes: list[str] | None = None,
    scoped_teams: list[int] | None = None, scoped_organizations: list[int] | None = None,
) -> str:
    key = auth.generate_key()
    session.add(
        PersonalAPIKey(
            id=uuid.uuid4().hex, user_id=user.id, label=label, scopes=scopes, scoped_teams=scoped_teams,
            scoped_organizations=scoped_organizations, **auth.new_key_record(key),
        )
    )
    await session.flush()
    return key


async def bootstrap(
    session: AsyncSession, *, organization_name: str = "Default organization",
    environment_name: str = "Default environment", email: str | None = None, scopes: list[str] | None = None,
    timezone: str = "UTC",
) -> Credentials:
    org = Organization(name=organization_name[:64])
    session.add(org)
    await session.flush()
    env = Environment(organization_id=org.id, name=environment_name, api_token=generate_api_token(),
                      timezone=timezone, test_account_filters=[])
    session.add(env)
    await session.flush()
    user = await create_user(session, organization=org, email=email, first_name="Admin")
    key = await create_personal_api_key(session, user=user, scopes=scopes if scopes is not None else ["*"])
    return Credentials(
        organization_id=str(org.uuid), environment_id=env.id, project_api_key=env.api_token,
        personal_api_key=key, user_email=user.email,
    )


async def has_any_organization(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(Organization)))

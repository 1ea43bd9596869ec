"""Personal API keys and scopes (spec/API.md §1.3–1.5).

Keys are `phx_` + 43 random characters. Only a salted SHA-256 of a key is stored, with an
indexed lookup prefix (the key's first 12 characters, 8 of them random) that narrows the
candidates, and a masked display value. Comparison is constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.errors import AuthenticationFailed, NotAuthenticated, NotFound, PermissionDenied
from app.models import Environment, OrganizationMembership, PersonalAPIKey, User

KEY_PREFIX = "phx_"
KEY_RANDOM_LENGTH = 43
LOOKUP_PREFIX_LENGTH = 12
_ALPHABET = string.ascii_letters + string.digits

_BEARER = re.compile(r"^Bearer\s+(\S+)\s*$")

Action = Literal["read", "write"]


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_RANDOM_LENGTH))


def hash_key(key: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}${key}".encode()).hexdigest()


def mask_key(key: str) -> str:
    return f"{key[:4]}...{key[-4:]}"


def new_key_record(key: str) -> dict[str, str]:
    salt = secrets.token_hex(16)
    return {
        "lookup_prefix": key[:LOOKUP_PREFIX_LENGTH],
        "salt": salt,
        "secure_value": hash_key(key, salt),
        "mask_value": mask_key(key),
    }


@dataclass(frozen=True)
class KeyCandidate:
    key: str
    source: Literal["Authorization header", "body", "query string"]


def find_key(request: Request, body: object | None) -> KeyCandidate | None:
    """The first presented credential, by the priority of §1.3. A `Bearer pha_…` (OAuth) header
    is not a personal key and disables the fallbacks."""
    header = request.headers.get("authorization")
    if header:
        match = _BEARER.match(header)
        if match:
            token = match.group(1)
            if token.startswith("pha_"):
                return None
            return KeyCandidate(token, "Authorization header")
    if isinstance(body, dict):
        value = body.get("personal_api_key")
        if isinstance(value, str) and value:
            return KeyCandidate(value, "body")
    value = request.query_params.get("personal_api_key")
    if value:
        return KeyCandidate(value, "query string")
    return None


async def authenticate_key(session: AsyncSession, candidate: KeyCandidate) -> tuple[User, PersonalAPIKey]:
    rows = (
        await session.execute(
            select(PersonalAPIKey, User)
            .join(User, User.id == PersonalAPIKey.user_id)
            .where(PersonalAPIKey.lookup_prefix == candidate.key[:LOOKUP_PREFIX_LENGTH], User.is_active.is_(True))
        )
    ).all()
    for key, user in rows:
        if hmac.compare_digest(key.secure_value, hash_key(candidate.key, key.salt)):
            now = clock.now()
            # Writing last_used_at on every request would turn reads into writes; once a minute is enough.
            if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
                key.last_used_at = now
            return user, key
    raise AuthenticationFailed(f"Personal API key found in request {candidate.source} is invalid.")


def scope_satisfied(scopes: list[str], required: str) -> bool:
    """`<obj>:write` also satisfies `<obj>:read`."""
    if required in scopes:
        return True
    obj, _, action = required.partition(":")
    return action == "read" and f"{obj}:write" in scopes


@dataclass(frozen=True)
class Principal:
    user: User
    key: PersonalAPIKey

    @property
    def scopes(self) -> list[str]:
        return list(self.key.scopes or [])


def check_scope_mapping(principal: Principal, scope: str | None) -> None:
    """Step 3(a): a scoped key on an action without a scope mapping."""
    if principal.scopes and scope is None:
        raise PermissionDenied("This action does not support Personal API Key access")


def check_key_restrictions(principal: Principal, environment: Environment, scope: str | None) -> None:
    """Steps 3(c)–3(e) for keys with a non-empty scope list."""
    scopes = principal.scopes
    if not scopes:
        return
    if principal.key.scoped_teams and environment.id not in principal.key.scoped_teams:
        raise PermissionDenied(f"API key does not have access to the requested project: ID {environment.id}.")
    if principal.key.scoped_organizations and environment.organization_id not in principal.key.scoped_organizations:
        raise PermissionDenied("API key does not have access to the requested organization.")
    if "*" in scopes or scope is None:
        return
    if not scope_satisfied(scopes, scope):
        raise PermissionDenied(f"API key missing required scope '{scope}'")


def check_scope_without_environment(principal: Principal, scope: str) -> None:
    scopes = principal.scopes
    if scopes and "*" not in scopes and not scope_satisfied(scopes, scope):
        raise PermissionDenied(f"API key missing required scope '{scope}'")


async def resolve_environment(session: AsyncSession, environment_id: int) -> Environment:
    env = await session.get(Environment, environment_id)
    if env is None:
        raise NotFound("Project not found.")
    return env


async def check_membership(session: AsyncSession, user: User, environment: Environment) -> None:
    found = await session.scalar(
        select(OrganizationMembership.id).where(
            OrganizationMembership.user_id == user.id,
            OrganizationMembership.organization_id == environment.organization_id,
        )
    )
    if found is None:
        raise PermissionDenied("You don't have access to the project.")


def not_authenticated(challenge: str | None) -> NotAuthenticated:
    err = NotAuthenticated()
    if challenge:
        err.status_code = 401
        err.headers["WWW-Authenticate"] = challenge
    return err

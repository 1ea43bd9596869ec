"""Personal API keys and scopes (spec/API.md §1.3–1.5).

Keys are `phx_` + 43 random characters. Only a salted SHA-256 of a key is stored, with an
indexed lookup prefix (the key's first 12 characters, 8 of them random) that narrows the
candidates, and a masked display value. Comparison is constant time.

Authentication results (key → user and key row), environments and memberships are cached in the
process for `auth_cache_seconds`, so an authenticated request usually costs no SQL. Only
successful lookups are cached: a new key, environment or membership is found at once. Any change
written through this process to a key, user, environment, organization or membership row (ORM
flush or bulk UPDATE/DELETE) empties the cache when it is flushed and again when it commits, so
a revoked key, a deactivated user or a removed membership is refused at once here; other
processes notice within the TTL. Cached rows are detached ORM objects shared by concurrent
requests: treat them as read-only (reload into the session to change one).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import Request
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.orm.attributes import set_committed_value

from app import clock
from app.errors import AuthenticationFailed, NotAuthenticated, NotFound, PermissionDenied
from app.models import Environment, Organization, OrganizationMembership, PersonalAPIKey, User

KEY_PREFIX = "phx_"
KEY_RANDOM_LENGTH = 43
LOOKUP_PREFIX_LENGTH = 12
_ALPHABET = string.ascii_letters + string.digits

# PostHog's pattern: everything after the scheme word (at least two characters, inner spaces
# included) is the token, so `Bearer abc def` is an invalid key rather than no credentials.
_BEARER = re.compile(r"^Bearer\s+(\S.+)$")

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
            token = match.group(1).strip()
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


class LocalCache:
    """Successful authentication lookups, each kept for the caller's TTL (monotonic time, never
    the possibly frozen app clock). `invalidate` empties everything; `epoch` lets a lookup that
    read the database before an invalidation refuse to store what it read."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self.epoch = 0
        self._entries: dict[tuple[str, Any], tuple[float, Any]] = {}
        self._loading: dict[tuple[str, Any], asyncio.Future] = {}

    async def load(self, kind: str, ident: Any, loader: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, else what `loader` returns, run once for concurrent callers of the
        process (when an entry expires under load, one request reads the database, not all of them).
        A waiter gets the loader's value only if it was stored (an invalidation during the load
        refuses it) and not None; otherwise, and if the loader failed, it runs its own loader."""
        value = self.get(kind, ident)
        if value is not None:
            return value
        slot = (kind, ident)
        pending = self._loading.get(slot)
        if pending is not None:
            shared = await asyncio.shield(pending)
            return shared if shared is not None else await loader()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._loading[slot] = future
        epoch = self.epoch
        value = None
        try:
            value = await loader()
            return value
        finally:
            if self._loading.get(slot) is future:
                del self._loading[slot]
            stored = value is not None and epoch == self.epoch and self.get(kind, ident) is value
            future.set_result(value if stored else None)

    def get(self, kind: str, ident: Any) -> Any:
        entry = self._entries.get((kind, ident))
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop((kind, ident), None)
            return None
        return entry[1]

    def put(self, kind: str, ident: Any, value: Any, *, ttl: float, epoch: int) -> None:
        if ttl <= 0 or epoch != self.epoch:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[(kind, ident)] = (time.monotonic() + ttl, value)

    def invalidate(self) -> None:
        self.epoch += 1
        self._entries.clear()


AUTH_CACHE = LocalCache()
_AUTH_TABLES = frozenset({"personal_api_key", "user", "environment", "organization", "organization_membership"})
_AUTH_CLASSES = (PersonalAPIKey, User, Environment, Organization, OrganizationMembership)
# Execution option of our own bookkeeping writes (last_used_at) that must not empty the cache.
NEUTRAL = "auth_cache_neutral"


def _mark_changed(session: Session) -> None:
    session.info["auth_changed"] = True
    AUTH_CACHE.invalidate()


@event.listens_for(Session, "before_flush")
def _on_flush(session: Session, flush_context: object, instances: object) -> None:
    if any(isinstance(obj, _AUTH_CLASSES) for obj in (*session.dirty, *session.deleted)):
        _mark_changed(session)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or state.execution_options.get(NEUTRAL):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in _AUTH_TABLES:
        _mark_changed(state.session)


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    # Again after the commit: a concurrent request may have cached the old row in between.
    if session.info.pop("auth_changed", False):
        AUTH_CACHE.invalidate()


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    session.info.pop("auth_changed", None)


def _detach(session: AsyncSession, *objs: object) -> None:
    for obj in objs:
        if obj in session:
            session.expunge(obj)


async def authenticate_key(session: AsyncSession, candidate: KeyCandidate, *,
                           cache_seconds: float = 0) -> tuple[User, PersonalAPIKey]:
    ident = hashlib.sha256(candidate.key.encode()).digest()  # the raw key is not kept in memory
    if cache_seconds > 0:
        user, key = await AUTH_CACHE.load("key", ident, lambda: _lookup_key(session, candidate, ident, cache_seconds))
    else:
        user, key = await _lookup_key(session, candidate, ident, cache_seconds)
    await _touch(session, key)
    return user, key


async def _lookup_key(session: AsyncSession, candidate: KeyCandidate, ident: bytes,
                      cache_seconds: float) -> tuple[User, PersonalAPIKey]:
    epoch = AUTH_CACHE.epoch
    rows = (
        await session.execute(
            select(PersonalAPIKey, User)
            .join(User, User.id == PersonalAPIKey.user_id)
            .where(PersonalAPIKey.lookup_prefix == candidate.key[:LOOKUP_PREFIX_LENGTH], User.is_active.is_(True))
        )
    ).all()
    for key, user in rows:
        if hmac.compare_digest(key.secure_value, hash_key(candidate.key, key.salt)):
            found = (user, key)
            if cache_seconds > 0:
                _detach(session, key, user)
                AUTH_CACHE.put("key", ident, found, ttl=cache_seconds, epoch=epoch)
            return found
    raise AuthenticationFailed(f"Personal API key found in request {candidate.source} is invalid.")


async def _touch(session: AsyncSession, key: PersonalAPIKey) -> None:
    """Writing last_used_at on every request would turn reads into writes; once a minute is enough."""
    now = clock.now()
    if key.last_used_at is not None and (now - key.last_used_at).total_seconds() <= 60:
        return
    # Also on a cached row, so concurrent requests skip the write; committed, so no flush repeats it.
    set_committed_value(key, "last_used_at", now)
    await session.execute(update(PersonalAPIKey).where(PersonalAPIKey.id == key.id).values(last_used_at=now)
                          .execution_options(**{NEUTRAL: True, "synchronize_session": False}))


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


async def resolve_environment(session: AsyncSession, environment_id: int, *, cache_seconds: float = 0) -> Environment:
    if cache_seconds > 0:
        return await AUTH_CACHE.load("environment", environment_id,
                                     lambda: _load_environment(session, environment_id, cache_seconds))
    return await _load_environment(session, environment_id, cache_seconds)


async def _load_environment(session: AsyncSession, environment_id: int, cache_seconds: float) -> Environment:
    epoch = AUTH_CACHE.epoch
    env = await session.get(Environment, environment_id)
    if env is None:
        raise NotFound("Project not found.")
    if cache_seconds > 0:
        _detach(session, env)
        AUTH_CACHE.put("environment", environment_id, env, ttl=cache_seconds, epoch=epoch)
    return env


async def membership(session: AsyncSession, user_id: int, organization_id: int, *,
                     cache_seconds: float = 0) -> tuple[int, int] | None:
    """(membership id, level) of the user in the organization (level 1 member, 8 admin, 15 owner),
    None if not a member."""
    if cache_seconds > 0:
        return await AUTH_CACHE.load("membership", (user_id, organization_id),
                                     lambda: _load_membership(session, user_id, organization_id, cache_seconds))
    cached = AUTH_CACHE.get("membership", (user_id, organization_id))
    if cached is not None:
        return cached
    return await _load_membership(session, user_id, organization_id, cache_seconds)


async def _load_membership(session: AsyncSession, user_id: int, organization_id: int,
                           cache_seconds: float) -> tuple[int, int] | None:
    epoch = AUTH_CACHE.epoch
    row = (await session.execute(
        select(OrganizationMembership.id, OrganizationMembership.level).where(
            OrganizationMembership.user_id == user_id,
            OrganizationMembership.organization_id == organization_id,
        )
    )).first()
    if row is None:
        return None
    found = (int(row[0]), int(row[1]))
    AUTH_CACHE.put("membership", (user_id, organization_id), found, ttl=cache_seconds, epoch=epoch)
    return found


async def membership_level(session: AsyncSession, user_id: int, organization_id: int, *,
                           cache_seconds: float = 0) -> int | None:
    found = await membership(session, user_id, organization_id, cache_seconds=cache_seconds)
    return None if found is None else found[1]


async def check_membership(session: AsyncSession, user: User, environment: Environment, *,
                           cache_seconds: float = 0) -> None:
    level = await membership_level(session, user.id, environment.organization_id, cache_seconds=cache_seconds)
    if level is None:
        raise PermissionDenied("You don't have access to the project.")


def not_authenticated(challenge: str | None) -> NotAuthenticated:
    err = NotAuthenticated()
    if challenge:
        err.status_code = 401
        err.headers["WWW-Authenticate"] = challenge
    return err

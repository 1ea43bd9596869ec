"""Request dependencies: sessions, backends and the authorization chain of spec/API.md §1.5."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app import auth
from app.errors import NotAcceptable, NotFound, ParseError
from app.models import Environment, User
from app.query_engine.executor.base import ClickHouseExecutor
from app.settings import Settings

AFTER_COMMIT_TASKS = "after_commit_tasks"  # as app/services/insights_snapshot.py fills it


class LazySession:
    """The request's `AsyncSession`, created on first use: a request answered from the in-process
    caches (a cached insight retrieve, most authentications) never opens one, and creating,
    committing and closing an unused session costs as much as the rest of such a request.

    Every attribute is the real session's (created on first access); only the calls that end a
    request's work, and membership tests, are answered without creating it."""

    __slots__ = ("_factory", "_session")

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._session: AsyncSession | None = None

    @property
    def started(self) -> bool:
        return self._session is not None

    def _real(self) -> AsyncSession:
        if self._session is None:
            self._session = self._factory()
        return self._session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __contains__(self, obj: object) -> bool:
        return self._session is not None and obj in self._session

    def __iter__(self):
        return iter(self._session) if self._session is not None else iter(())

    def in_transaction(self) -> bool:
        return self._session is not None and self._session.in_transaction()

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()

    async def settle(self) -> None:
        """Await what the commits of this session started (the insights counter bump, see
        app/services/insights_snapshot.py), so that it is done before the response is sent."""
        if self._session is None:
            return
        tasks = self._session.sync_session.info.pop(AFTER_COMMIT_TASKS, None)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def rollback(self) -> None:
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, opened lazily (`LazySession`): committed before the response is
    sent, rolled back on error, closed in any case."""
    session = LazySession(request.app.state.sessionmaker)
    try:
        yield session  # type: ignore[misc]  # an AsyncSession for every purpose of a route
        await session.commit()
        await session.settle()
    except BaseException:
        await session.rollback()
        raise
    finally:
        await session.close()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

ThrottleClass = Literal["insight", "element", "default"]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_clickhouse(request: Request) -> ClickHouseExecutor:
    return request.app.state.clickhouse


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClickHouseDep = Annotated[ClickHouseExecutor, Depends(get_clickhouse)]


@dataclass(frozen=True)
class Context:
    """Who is calling, and on which environment (None for routes outside an environment)."""

    user: User
    principal: auth.Principal
    environment: Environment | None

    @property
    def env(self) -> Environment:
        assert self.environment is not None
        return self.environment


async def _json_body(request: Request) -> Any:
    if request.method not in ("POST", "PUT", "PATCH") or "json" not in request.headers.get("content-type", ""):
        return None
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None  # the route's own body parsing reports the parse error


async def read_json_body(request: Request) -> Any:
    """A route's own JSON body: empty → {}, malformed → 400 parse_error (§1.1)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None


def _parse_environment_id(raw: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise NotFound("Project not found.") from None
    if value < 1 or value > 2**31 - 1:
        raise NotFound("Project not found.")
    return value


def _challenge(request: Request) -> str:
    base = str(request.base_url).rstrip("/")
    return f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource"'


# The routes that can also answer CSV (spec/API.md §3.14); every other route speaks JSON only.
CSV_ROUTES = frozenset({"list_insights", "retrieve_insight"})
_MEDIA_TYPES = {"json": ("application", "json"), "csv": ("text", "csv")}


def _accepted(header: str) -> list[list[tuple[str, str]]]:
    """The Accept header's media ranges grouped by specificity, most specific group first (as DRF
    orders them; `q` values are not weighed)."""
    groups: dict[int, list[tuple[str, str]]] = {}
    for token in header.split(","):
        media, _, params = token.strip().partition(";")
        main, _, sub = media.strip().lower().partition("/")
        if not main:
            continue
        has_params = any(p.split("=")[0].strip() not in ("", "q") for p in params.split(";"))
        rank = 0 if main == "*" else 1 if sub == "*" else 3 if has_params else 2
        groups.setdefault(rank, []).append((main, sub))
    return [groups[rank] for rank in sorted(groups, reverse=True)]


def negotiate(request: Request) -> str:
    """§1.1: the response format, `json` or `csv`, decided once per request (the authorization
    dependency decides it; the view reads the same answer). An explicit `format` the route cannot
    produce is a 404; otherwise the Accept header picks among the route's formats (JSON first), and
    an Accept header none of them satisfies is a 406."""
    decided = getattr(request.state, "response_format", None)
    if decided is None:
        decided = request.state.response_format = _negotiate(request)
    return decided


def _negotiate(request: Request) -> str:
    route = request.scope.get("route")
    formats = ("json", "csv") if getattr(route, "name", None) in CSV_ROUTES else ("json",)
    fmt = request.query_params.get("format")
    if fmt is not None:
        if fmt not in formats:
            raise NotFound()
        return fmt  # an explicit format wins over the Accept header
    header = request.headers.get("accept", "").strip() or "*/*"
    for group in _accepted(header):
        for name in formats:
            main, sub = _MEDIA_TYPES[name]
            if any(m in ("*", main) and s in ("*", sub) for m, s in group):
                return name
    raise NotAcceptable()


def authorize(
    scope: str | None,
    *,
    throttle: ThrottleClass | None = None,
    challenge: bool = False,
    environment: bool = True,
):
    """Build the dependency that runs steps 2–5 of §1.5 for one route.

    `scope` is the route's required scope (None: no mapping); `challenge` selects the 401 +
    `WWW-Authenticate` flavour of authentication failures (element routes)."""

    async def dependency(request: Request, session: SessionDep) -> Context:
        negotiate(request)  # before authentication, where PostHog (DRF) negotiates the renderer
        body = await _json_body(request)
        candidate = auth.find_key(request, body)
        ttl = request.app.state.settings.auth_cache_seconds
        try:
            if candidate is None:
                raise auth.not_authenticated(_challenge(request) if challenge else None)
            user, key = await auth.authenticate_key(session, candidate, cache_seconds=ttl)
        except auth.AuthenticationFailed as exc:
            if challenge:
                exc.status_code = 401
                exc.headers["WWW-Authenticate"] = _challenge(request)
            raise
        principal = auth.Principal(user=user, key=key)
        auth.check_scope_mapping(principal, scope)
        env: Environment | None = None
        if environment:
            env_id = _parse_environment_id(request.path_params.get("environment_id", ""))
            env = await auth.resolve_environment(session, env_id, cache_seconds=ttl)
            auth.check_key_restrictions(principal, env, scope)
            await auth.check_membership(session, user, env, cache_seconds=ttl)
        elif scope is not None:
            auth.check_scope_without_environment(principal, scope)
        if throttle is not None:
            # Routes outside an environment share one bucket per key (environment 0).
            await request.app.state.rate_limiter.hit(throttle, environment_id=env.id if env is not None else 0,
                                                     key_id=key.id)
        return Context(user=user, principal=principal, environment=env)

    return Depends(dependency, scope="function")

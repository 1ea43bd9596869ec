"""In-process snapshots of what a retrieve reads from PostgreSQL (the insight, its tiles with their
dashboards, the other users it names, its access rules), so a cached `GET insights/{id}/` runs no SQL.

Validity: a snapshot carries the value of a Redis counter (`insights_version`) read when it was
taken; a retrieve reads the counter (one round trip) and uses the snapshot only while the value is
unchanged and the snapshot is younger than `auth_cache_seconds`. Every change to an insight, tile,
dashboard, user or access rule written through the ORM (flush, or bulk UPDATE/DELETE) drops this process'
snapshots when it is flushed and again when it commits, and after the commit increments the
counter so other processes drop theirs. Without Redis no snapshot is used. Snapshot rows are
detached ORM objects shared by concurrent requests: read-only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from app.auth import LocalCache
from app.models import AccessControl, Dashboard, DashboardTile, Insight, User
from app.services import insights as service
from app.services.insights_repr import Related, load_related

log = logging.getLogger(__name__)

VERSION_KEY = "insights_version"
SNAPSHOTS = LocalCache()
_TABLES = frozenset({"insight", "dashboard_tile", "dashboard", "user", "access_control"})
_CLASSES = (Insight, DashboardTile, Dashboard, User, AccessControl)
_redis: Redis | None = None
_pending: set[asyncio.Task] = set()
AFTER_COMMIT_TASKS = "after_commit_tasks"  # session.info key: work to await once the commit returned


@dataclass(frozen=True)
class Snapshot:
    insight: Insight
    related: Related
    version: bytes | None


def bind(redis: Redis) -> None:
    """The Redis client that carries the counter (set by the first request of the process)."""
    global _redis
    _redis = redis


def _changed(session: Session) -> None:
    session.info["insights_changed"] = True
    SNAPSHOTS.invalidate()


@event.listens_for(Session, "before_flush")
def _on_flush(session: Session, flush_context: object, instances: object) -> None:
    if any(isinstance(obj, _CLASSES) for obj in (*session.new, *session.dirty, *session.deleted)):
        _changed(session)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete or state.is_insert:
        if getattr(getattr(state.statement, "table", None), "name", None) in _TABLES:
            _changed(state.session)


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    if not session.info.pop("insights_changed", False):
        return
    SNAPSHOTS.invalidate()
    if _redis is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_bump(_redis))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    # The request's session dependency awaits it before the response is sent (app/deps.py), so a
    # client that got the answer to its write finds the counter bumped, in any process.
    session.info.setdefault(AFTER_COMMIT_TASKS, []).append(task)


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    session.info.pop("insights_changed", None)


async def _bump(redis: Redis) -> None:
    try:
        await redis.incr(VERSION_KEY)
    except RedisError as exc:  # other processes notice within the TTL
        log.warning("insights version not bumped: %s", exc)


_NO_REDIS = object()


def peek(*, environment_id: int, ref: str, short_id: str | None) -> Snapshot | None:
    """An unexpired snapshot, still to be validated against the counter by the caller (the
    cached-retrieve path reads the counter together with the cache entry, see insights_views)."""
    return SNAPSHOTS.get("retrieve", (environment_id, ref, short_id))


async def load_for_retrieve(session: AsyncSession, redis: Redis, *, environment_id: int, ref: str,
                            short_id: str | None, me: User, ttl: float) -> tuple[Insight, Related]:
    """The insight a retrieve addresses (404 as `get_insight`) and its related rows."""
    bind(redis)
    version: Any = _NO_REDIS
    if ttl > 0:
        try:
            version = await redis.get(VERSION_KEY)
        except RedisError:
            version = _NO_REDIS
    ident = (environment_id, ref, short_id)
    if version is not _NO_REDIS:
        snapshot = SNAPSHOTS.get("retrieve", ident)
        if snapshot is not None and snapshot.version == version:
            return snapshot.insight, snapshot.related
        # When a snapshot expires under load, one request of the process reads the rows; the
        # others that read the same counter value wait for that snapshot.
        slot = (ident, version)
        pending = _loading.get(slot)
        if pending is not None:
            shared = await asyncio.shield(pending)
            if shared is not None:
                return shared.insight, shared.related
        else:
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            _loading[slot] = future
            taken = None
            try:
                insight, related = await _load(session, ident, version, me, ttl)
                taken = SNAPSHOTS.get("retrieve", ident)  # None when an invalidation refused it
                if taken is not None and taken.insight is not insight:
                    taken = None
                return insight, related
            finally:
                if _loading.get(slot) is future:
                    del _loading[slot]
                future.set_result(taken)  # None (failed, 404, refused): the waiters read the rows themselves
    return await _load(session, ident, version, me, ttl)


_loading: dict[tuple, asyncio.Future] = {}


async def _load(session: AsyncSession, ident: tuple, version: Any, me: User, ttl: float) -> tuple[Insight, Related]:
    environment_id, ref, short_id = ident
    epoch = SNAPSHOTS.epoch
    insight = await service.get_insight(session, environment_id, ref, short_id=short_id)
    related = await load_related(session, [insight], me)
    if version is not _NO_REDIS:
        for obj in (insight, *related.users.values(), *(o for pairs in related.tiles.values() for p in pairs for o in p)):
            if obj in session:
                session.expunge(obj)
        SNAPSHOTS.put("retrieve", ident, Snapshot(insight, related, version), ttl=ttl, epoch=epoch)
    return insight, related

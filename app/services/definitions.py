"""Property and event definitions of an environment (written by ingestion, read by the UI and
the query engine)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.errors import NotFound
from app.models.definitions import (
    EVENT_PROPERTY, GROUP_PROPERTY, PERSON_PROPERTY, SESSION_PROPERTY, EventDefinition, PropertyDefinition,
)
from app.query_engine.executor.base import ClickHouseExecutor

TYPE_CODES = {"event": EVENT_PROPERTY, "person": PERSON_PROPERTY, "group": GROUP_PROPERTY, "session": SESSION_PROPERTY}
TYPE_NAMES = {v: k for k, v in TYPE_CODES.items()}


def _like(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _properties_query(environment_id: int, *, kind: int, search: str | None, property_type: str | None) -> Select:
    query = select(PropertyDefinition).where(
        PropertyDefinition.environment_id == environment_id, PropertyDefinition.type == kind
    )
    if search:
        query = query.where(PropertyDefinition.name.ilike(_like(search), escape="\\"))
    if property_type:
        query = query.where(PropertyDefinition.property_type == property_type)
    return query


async def list_property_definitions(
    session: AsyncSession, *, environment_id: int, kind: int, search: str | None, property_type: str | None,
    limit: int, offset: int,
) -> tuple[int, list[PropertyDefinition]]:
    query = _properties_query(environment_id, kind=kind, search=search, property_type=property_type)
    count = await session.scalar(select(func.count()).select_from(query.subquery()))
    # Shorter names first (PostHog's ordering puts the closest match on top), then alphabetical.
    rows = await session.scalars(
        query.order_by(func.length(PropertyDefinition.name), PropertyDefinition.name).limit(limit).offset(offset)
    )
    return int(count or 0), list(rows)


async def update_property_type(
    session: AsyncSession, *, environment_id: int, definition_id: int, property_type: str | None
) -> PropertyDefinition:
    # An id past the int4 column's range names no row; the driver would refuse to bind it (500).
    if not 0 < definition_id <= 2**31 - 1:
        raise NotFound()
    definition = await session.scalar(select(PropertyDefinition).where(
        PropertyDefinition.id == definition_id, PropertyDefinition.environment_id == environment_id))
    if definition is None:
        raise NotFound()
    definition.property_type = property_type
    definition.is_numerical = property_type == "Numeric"
    definition.updated_at = clock.now()
    await session.flush()
    return definition


async def list_event_definitions(
    session: AsyncSession, clickhouse: ClickHouseExecutor, *, environment_id: int, search: str | None,
    limit: int, offset: int,
) -> tuple[int, list[dict]]:
    query = select(EventDefinition).where(EventDefinition.environment_id == environment_id)
    if search:
        query = query.where(EventDefinition.name.ilike(_like(search), escape="\\"))
    count = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = list(await session.scalars(query.order_by(EventDefinition.name).limit(limit).offset(offset)))
    stats = await _event_stats(clickhouse, environment_id, [r.name for r in rows])
    out = []
    for row in rows:
        volume, last_seen = stats.get(row.name, (0, None))
        out.append({"id": row.id, "name": row.name, "volume_30_day": volume,
                    "last_seen_at": last_seen or row.last_seen_at, "created_at": row.created_at})
    return int(count or 0), out


async def _event_stats(clickhouse: ClickHouseExecutor, environment_id: int,
                       names: list[str]) -> dict[str, tuple[int, datetime | None]]:
    """30-day volume and last-seen per event, counted in ClickHouse (the source of truth)."""
    if not names:
        return {}
    since = clock.now() - timedelta(days=30)
    result = await clickhouse.execute(
        "SELECT event, countIf(timestamp >= {since:DateTime64(6, 'UTC')}), max(timestamp) FROM events"
        " WHERE team_id = {team:Int64} AND event IN {names:Array(String)} GROUP BY event",
        {"team": environment_id, "names": names, "since": since},
    )
    stats = {}
    for name, volume, last_seen in result.rows:
        parsed = datetime.fromisoformat(str(last_seen)).replace(tzinfo=timezone.utc) if last_seen else None
        stats[name] = (int(volume), parsed)
    return stats


async def property_types(session: AsyncSession, environment_id: int) -> dict[tuple[int, int, str], str]:
    """(type, group_type_index, name) → property_type of every typed definition, for the query
    engine's comparisons (one statement per query)."""
    rows = await session.execute(
        select(PropertyDefinition.type, PropertyDefinition.group_type_index, PropertyDefinition.name,
               PropertyDefinition.property_type)
        .where(PropertyDefinition.environment_id == environment_id, PropertyDefinition.property_type.is_not(None))
    )
    return {(t, g, n): pt for t, g, n, pt in rows.all()}

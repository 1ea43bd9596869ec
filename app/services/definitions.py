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


# Event properties ingestion writes that PostHog never lists (they are not filterable by users).
HIDDEN_EVENT_PROPERTIES = (
    "distinct_id", "$set", "$set_once", "$initial_referrer", "$initial_referring_domain",
    "$groups", "$group_type", "$group_key", "$group_set", "$group_0", "$group_1", "$group_2", "$group_3", "$group_4",
)


def _like(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search(query: Select, column, search: str | None) -> Select:
    """Every space-separated word must occur in the name (case-insensitive), as PostHog searches."""
    for word in (search or "").split(" "):
        if word:
            query = query.where(column.ilike(_like(word), escape="\\"))
    return query


def _properties_query(environment_id: int, *, kind: int, search: str | None, property_type: str | None,
                      group_type_index: int | None = None, names: list[str] | None = None,
                      numerical_only: bool = False, excluded: list[str] | None = None) -> Select:
    query = select(PropertyDefinition).where(
        PropertyDefinition.environment_id == environment_id, PropertyDefinition.type == kind
    )
    if kind == GROUP_PROPERTY and group_type_index is not None:
        query = query.where(PropertyDefinition.group_type_index == group_type_index)
    if kind == EVENT_PROPERTY:
        query = query.where(PropertyDefinition.name.not_in(HIDDEN_EVENT_PROPERTIES))
    query = _search(query, PropertyDefinition.name, search)
    if names is not None:
        query = query.where(PropertyDefinition.name.in_(names))
    if numerical_only:
        query = query.where(PropertyDefinition.is_numerical.is_(True),
                            PropertyDefinition.name.not_in(("distinct_id", "timestamp")))
    if excluded:
        query = query.where(PropertyDefinition.name.not_in(excluded))
    if property_type:
        query = query.where(PropertyDefinition.property_type == property_type)
    return query


async def list_property_definitions(
    session: AsyncSession, *, environment_id: int, kind: int, search: str | None, property_type: str | None,
    limit: int, offset: int, group_type_index: int | None = None, names: list[str] | None = None,
    numerical_only: bool = False, excluded: list[str] | None = None,
) -> tuple[int, list[PropertyDefinition]]:
    query = _properties_query(environment_id, kind=kind, search=search, property_type=property_type,
                              group_type_index=group_type_index, names=names, numerical_only=numerical_only,
                              excluded=excluded)
    count = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(PropertyDefinition.name).limit(limit).offset(offset))
    return int(count or 0), list(rows)


async def get_property_definition(session: AsyncSession, *, environment_id: int,
                                  definition_id: int) -> PropertyDefinition:
    # An id past the int4 column's range names no row; the driver would refuse to bind it (500).
    if not 0 < definition_id <= 2**31 - 1:
        raise NotFound()
    definition = await session.scalar(select(PropertyDefinition).where(
        PropertyDefinition.id == definition_id, PropertyDefinition.environment_id == environment_id))
    if definition is None:
        raise NotFound()
    return definition


async def update_property_type(
    session: AsyncSession, *, environment_id: int, definition_id: int, property_type: str | None
) -> PropertyDefinition:
    definition = await get_property_definition(session, environment_id=environment_id, definition_id=definition_id)
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
    query = _search(query, EventDefinition.name, search)
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

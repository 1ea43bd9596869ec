"""PostgreSQL side of person processing: batched reads for the processor, one transaction of
batched upserts per ingestion batch. Reads take arrays; writes are one compiled statement with
the rows as parameters (SQLAlchemy sends them as multi-row INSERTs), so a batch costs a handful
of round trips whatever its size."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any, Iterable

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import clock
from app.ingestion.persons import Changes, GroupState, PersonState
from app.models import Group, GroupTypeMapping, Person, PersonDistinctId, PersonlessDistinctId

def _array(name: str, values: Iterable[Any], item: Any = sa.String) -> Any:
    return sa.bindparam(name, value=list(values), type_=pg.ARRAY(item))


class PostgresLoader:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def load_ids(self, team_id: int, dids: list[str]) -> tuple[dict[str, tuple[PersonState, int]], set[str]]:
        d, p = PersonDistinctId, Person
        query = (
            sa.select(d.distinct_id, d.version, p.id, p.created_at, p.properties, p.is_identified, p.version)
            .join(p, p.id == d.person_id)
            .where(d.environment_id == team_id, d.distinct_id == sa.any_(_array("dids", dids)))
        )
        personless_q = sa.select(PersonlessDistinctId.distinct_id).where(
            PersonlessDistinctId.environment_id == team_id,
            PersonlessDistinctId.distinct_id == sa.any_(_array("dids", dids)),
        )
        async with self.sessionmaker() as session:
            rows = (await session.execute(query)).all()
            personless = set((await session.scalars(personless_q)).all())
        persons: dict[uuidlib.UUID, PersonState] = {}
        found: dict[str, tuple[PersonState, int]] = {}
        for did, did_version, pid, created_at, props, identified, version in rows:
            state = persons.get(pid)
            if state is None:
                state = persons[pid] = PersonState(pid, created_at, dict(props or {}), bool(identified), int(version))
            found[did] = (state, int(did_version))
        return found, personless

    async def load_person_dids(self, team_id: int, person_id: uuidlib.UUID) -> dict[str, int]:
        d = PersonDistinctId
        async with self.sessionmaker() as session:
            rows = await session.execute(
                sa.select(d.distinct_id, d.version).where(d.environment_id == team_id, d.person_id == person_id)
            )
            return {did: int(version) for did, version in rows}

    async def load_group_types(self, team_id: int) -> dict[str, int]:
        g = GroupTypeMapping
        async with self.sessionmaker() as session:
            rows = await session.execute(sa.select(g.group_type, g.group_type_index).where(g.environment_id == team_id))
            return {name: int(index) for name, index in rows}

    async def load_groups(self, team_id: int, keys: list[tuple[int, str]]) -> dict[tuple[int, str], GroupState]:
        g = Group
        async with self.sessionmaker() as session:
            rows = await session.execute(
                sa.select(g.group_type_index, g.group_key, g.group_properties, g.created_at, g.version).where(
                    g.environment_id == team_id, g.group_key == sa.any_(_array("keys", {k for _, k in keys}))
                )
            )
            wanted = set(keys)
            return {
                (int(i), k): GroupState(dict(props or {}), created_at, int(version))
                for i, k, props, created_at, version in rows if (int(i), k) in wanted
            }


async def persist_changes(session: AsyncSession, changes: Changes) -> None:
    """Upsert everything a batch changed; the caller commits."""
    if changes.deleted:
        ids = [pid for (_, pid) in changes.deleted]
        await session.execute(sa.delete(Person).where(Person.id == sa.any_(_array("ids", ids, sa.Uuid))))
    persons = [
        {"id": p.id, "environment_id": team, "created_at": p.created_at, "properties": p.properties,
         "is_identified": p.is_identified, "version": p.version}
        for (team, _), p in changes.persons.items()
    ]
    if persons:
        stmt = pg.insert(Person)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[Person.id],
            set_={c: stmt.excluded[c] for c in ("created_at", "properties", "is_identified", "version")},
        ), persons)
    dids = [
        {"environment_id": team, "distinct_id": did, "person_id": pid, "version": version}
        for (team, did), (pid, version) in changes.distinct_ids.items()
    ]
    if dids:
        stmt = pg.insert(PersonDistinctId)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[PersonDistinctId.environment_id, PersonDistinctId.distinct_id],
            set_={"person_id": stmt.excluded.person_id, "version": stmt.excluded.version},
        ), dids)
    now = clock.now()
    personless = [{"environment_id": t, "distinct_id": d, "created_at": now} for t, d in changes.personless]
    if personless:
        await session.execute(pg.insert(PersonlessDistinctId).on_conflict_do_nothing(), personless)
    types = [{"environment_id": t, "group_type": name, "group_type_index": i}
             for (t, name), i in changes.group_types.items()]
    if types:
        await session.execute(pg.insert(GroupTypeMapping).on_conflict_do_nothing(), types)
    groups = [
        {"environment_id": t, "group_type_index": i, "group_key": k, "group_properties": g.properties,
         "created_at": g.created_at, "version": g.version}
        for (t, i, k), g in changes.groups.items()
    ]
    if groups:
        stmt = pg.insert(Group)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[Group.environment_id, Group.group_type_index, Group.group_key],
            set_={"group_properties": stmt.excluded.group_properties, "version": stmt.excluded.version},
        ), groups)


def clickhouse_rows(changes: Changes) -> dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """The replica rows for ClickHouse's person tables, keyed by table."""
    out: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {}
    person_rows = [
        (p.id, p.created_at, team, p.properties_json(), int(p.is_identified), 0, p.version)
        for (team, _), p in changes.persons.items()
    ] + [
        (p.id, p.created_at, team, p.properties_json(), int(p.is_identified), 1, p.version)
        for (team, _), p in changes.deleted.items()
    ]
    if person_rows:
        out["person"] = (("id", "created_at", "team_id", "properties", "is_identified", "is_deleted", "version"),
                         person_rows)
    did_cols = ("team_id", "distinct_id", "person_id", "is_deleted", "version")
    did_rows = [(team, did, pid, 0, v) for (team, did), (pid, v) in changes.distinct_ids.items()]
    if did_rows:
        out["person_distinct_id2"] = (did_cols, did_rows)
        overrides = [row for row in did_rows if row[4] > 0]
        if overrides:
            out["person_distinct_id_overrides"] = (did_cols, overrides)
    group_rows = [
        (i, k, g.created_at, t, orjson.dumps(g.properties).decode())
        for (t, i, k), g in changes.groups.items()
    ]
    if group_rows:
        out["groups"] = (("group_type_index", "group_key", "created_at", "team_id", "group_properties"), group_rows)
    return out

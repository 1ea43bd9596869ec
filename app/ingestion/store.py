"""PostgreSQL side of person processing: batched reads for the processor, one transaction of
batched writes per ingestion batch. Reads take arrays; new rows are multi-row INSERTs, changed rows
one UPDATE per table over parallel arrays, each applied only where the stored version is still the
one the batch read (compare-and-set), so a batch costs a handful of round trips whatever its size
and concurrent writers (several processes) never overwrite each other."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import clock
from app.ingestion.persons import Changes, GroupState, PersonState
from app.ingestion.rows import properties_json
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


class PersonConflict(Exception):
    """Another process changed a row this batch read: prepare the batch again from PostgreSQL."""


def _check(result: Any, wanted: int, what: str) -> None:
    got = len(result.all())
    if got != wanted:
        raise PersonConflict(f"{wanted - got} of {wanted} {what} row(s) changed concurrently")


# Compare-and-set updates: one statement per table, the rows as parallel arrays; a row is updated
# only where its stored version is still the one the batch started from.
_UPDATE_PERSONS = sa.text("""
UPDATE person AS p SET created_at = v.created_at, properties = v.properties::jsonb,
       is_identified = v.is_identified, version = v.version
FROM unnest(CAST(:ids AS uuid[]), CAST(:expected AS bigint[]), CAST(:created AS timestamptz[]),
            CAST(:props AS text[]), CAST(:identified AS boolean[]), CAST(:versions AS bigint[]))
     AS v(id, expected, created_at, properties, is_identified, version)
WHERE p.id = v.id AND p.version = v.expected
RETURNING p.id
""")
_DELETE_PERSONS = sa.text("""
DELETE FROM person AS p
USING unnest(CAST(:ids AS uuid[]), CAST(:expected AS bigint[])) AS v(id, expected)
WHERE p.id = v.id AND p.version = v.expected
RETURNING p.id
""")
_UPDATE_DIDS = sa.text("""
UPDATE person_distinct_id AS d SET person_id = v.person_id, version = v.version
FROM unnest(CAST(:dids AS text[]), CAST(:expected AS bigint[]), CAST(:pids AS uuid[]), CAST(:versions AS bigint[]))
     AS v(distinct_id, expected, person_id, version)
WHERE d.environment_id = :team AND d.distinct_id = v.distinct_id AND d.version = v.expected
RETURNING d.distinct_id
""")
_UPDATE_GROUPS = sa.text("""
UPDATE "group" AS g SET group_properties = v.properties::jsonb, version = v.version
FROM unnest(CAST(:indexes AS smallint[]), CAST(:keys AS text[]), CAST(:expected AS integer[]),
            CAST(:props AS text[]), CAST(:versions AS integer[]))
     AS v(group_type_index, group_key, expected, properties, version)
WHERE g.environment_id = :team AND g.group_type_index = v.group_type_index AND g.group_key = v.group_key
  AND g.version = v.expected
RETURNING g.group_key
""")


# Row locks are taken in one global order (table by table, key order inside a table) so that two
# processes writing overlapping rows wait for each other instead of deadlocking.
_LOCK_PERSONS = sa.text("SELECT id FROM person WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE")
_LOCK_DIDS = sa.text(
    "SELECT distinct_id FROM person_distinct_id WHERE environment_id = :team"
    " AND distinct_id = ANY(CAST(:dids AS text[])) ORDER BY distinct_id FOR UPDATE")
_LOCK_GROUPS = sa.text(
    'SELECT group_key FROM "group" WHERE environment_id = :team AND group_type_index = :index'
    " AND group_key = ANY(CAST(:keys AS text[])) ORDER BY group_key FOR UPDATE")

RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def is_retryable(exc: BaseException) -> bool:
    """A PostgreSQL error that means "lost a race", to be handled like a PersonConflict."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def _json(value: dict[str, Any]) -> str:
    return properties_json(value)  # with the stdlib fallback for integers beyond 64 bits


async def persist_changes(session: AsyncSession, changes: Changes) -> None:
    """Apply everything a batch changed, each row only if nobody changed it since the batch read it.

    Raises PersonConflict (the caller rolls back and prepares the batch again) otherwise. The caller
    commits."""
    expected = changes.expected_persons
    # A person created and merged away inside the batch never reached PostgreSQL.
    gone = sorted((pid, expected[(t, pid)]) for (t, pid) in changes.deleted if expected.get((t, pid)) is not None)
    created, updated = [], []
    for key, p in sorted(changes.persons.items(), key=lambda item: item[0][1]):
        (created if expected.get(key) is None else updated).append((key, p))
    existing = sorted({pid for pid, _ in gone} | {p.id for _, p in updated})
    if existing:
        await session.execute(_LOCK_PERSONS, {"ids": existing})
    if changes.deleted:
        if gone:
            result = await session.execute(_DELETE_PERSONS, {"ids": [g[0] for g in gone],
                                                             "expected": [g[1] for g in gone]})
            _check(result, len(gone), "person")
    if created:
        result = await session.execute(
            pg.insert(Person).on_conflict_do_nothing().returning(Person.id),
            [{"id": p.id, "environment_id": team, "created_at": p.created_at, "properties": p.properties,
              "is_identified": p.is_identified, "version": p.version} for (team, _), p in created],
        )
        _check(result, len(created), "person")
    if updated:
        result = await session.execute(_UPDATE_PERSONS, {
            "ids": [p.id for _, p in updated], "expected": [expected[k] for k, _ in updated],
            "created": [p.created_at for _, p in updated], "props": [_json(p.properties) for _, p in updated],
            "identified": [p.is_identified for _, p in updated], "versions": [p.version for _, p in updated],
        })
        _check(result, len(updated), "person")
    new_dids, moved = [], {}
    for (team, did), (pid, version) in sorted(changes.distinct_ids.items()):
        before = changes.expected_dids.get((team, did))
        if before is None:
            new_dids.append({"environment_id": team, "distinct_id": did, "person_id": pid, "version": version})
        else:
            moved.setdefault(team, []).append((did, before, pid, version))
    for team, rows in sorted(moved.items()):
        await session.execute(_LOCK_DIDS, {"team": team, "dids": [r[0] for r in rows]})
    if new_dids:
        result = await session.execute(
            pg.insert(PersonDistinctId).on_conflict_do_nothing().returning(PersonDistinctId.distinct_id), new_dids)
        _check(result, len(new_dids), "distinct id")
    for team, rows in sorted(moved.items()):
        result = await session.execute(_UPDATE_DIDS, {
            "team": team, "dids": [r[0] for r in rows], "expected": [r[1] for r in rows],
            "pids": [r[2] for r in rows], "versions": [r[3] for r in rows]})
        _check(result, len(rows), "distinct id")
    now = clock.now()
    personless = [{"environment_id": t, "distinct_id": d, "created_at": now} for t, d in sorted(changes.personless)]
    if personless:
        await session.execute(pg.insert(PersonlessDistinctId).on_conflict_do_nothing(), personless)
    types = [{"environment_id": t, "group_type": name, "group_type_index": i}
             for (t, name), i in sorted(changes.group_types.items())]
    if types:
        # Another process may have given this index (or this type) away first: then ours is stale.
        result = await session.execute(
            pg.insert(GroupTypeMapping).on_conflict_do_nothing().returning(GroupTypeMapping.group_type_index), types)
        _check(result, len(types), "group type")
    new_groups, changed_groups = [], {}
    for (t, i, k), g in sorted(changes.groups.items(), key=lambda item: item[0]):
        before = changes.expected_groups.get((t, i, k))
        if before is None:
            new_groups.append({"environment_id": t, "group_type_index": i, "group_key": k,
                               "group_properties": g.properties, "created_at": g.created_at, "version": g.version})
        else:
            changed_groups.setdefault(t, []).append((i, k, before, g))
    for team, rows in sorted(changed_groups.items()):
        for index in sorted({r[0] for r in rows}):
            await session.execute(_LOCK_GROUPS, {"team": team, "index": index,
                                                 "keys": [r[1] for r in rows if r[0] == index]})
    if new_groups:
        result = await session.execute(pg.insert(Group).on_conflict_do_nothing().returning(Group.group_key),
                                       new_groups)
        _check(result, len(new_groups), "group")
    for team, rows in sorted(changed_groups.items()):
        result = await session.execute(_UPDATE_GROUPS, {
            "team": team, "indexes": [r[0] for r in rows], "keys": [r[1] for r in rows],
            "expected": [r[2] for r in rows], "props": [_json(r[3].properties) for r in rows],
            "versions": [r[3].version for r in rows]})
        _check(result, len(rows), "group")


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
        (i, k, g.created_at, t, g.properties_json())
        for (t, i, k), g in changes.groups.items()
    ]
    if group_rows:
        out["groups"] = (("group_type_index", "group_key", "created_at", "team_id", "group_properties"), group_rows)
    return out

"""Person and group state shared by several ingesting processes: PostgreSQL is the authority.

Two apps (or two writers) over the same backends stand in for two `serve` processes: each has its
own in-process person view, exactly as separate processes do."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import select

from app.ingestion import metrics
from app.ingestion.events import normalize
from app.ingestion.writer import IngestionWriter
from app.main import create_app
from app.models import Group, Person, PersonDistinctId
from tests.ingestion.helpers import event, person_of, unique_persons


@pytest.fixture
async def second_app(settings, backends):
    other = create_app(settings.model_copy(update={"inprocess_worker": False}), backends=backends)
    async with other.router.lifespan_context(other):
        yield other


async def _client(application):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://testserver")


async def _post(client, env, *evs):
    r = await client.post("/batch/", json={"api_key": env.creds.project_api_key, "batch": list(evs)})
    assert r.status_code == 200, r.text


async def _pg_state(backends, team_id):
    async with backends.sessionmaker() as session:
        persons = {p.id: p for p in (await session.scalars(select(Person).where(Person.environment_id == team_id))).all()}
        dids = {d.distinct_id: d.person_id for d in
                (await session.scalars(select(PersonDistinctId).where(PersonDistinctId.environment_id == team_id))).all()}
    return persons, dids


async def _ch_person(ch, team_id, person_id):
    result = await ch.execute(
        "SELECT argMax(properties, version), argMax(is_deleted, version), max(version) FROM person"
        " WHERE team_id = {t:Int64} AND id = {id:UUID} GROUP BY id", {"t": team_id, "id": str(person_id)})
    props, deleted, version = result.rows[0]
    return json.loads(props), deleted, version


async def test_two_apps_interleaved_identifies_converge(app, second_app, env, backends):
    """Both apps set properties on, and merge, the same distinct ids at the same time: every pair
    ends as one person holding every property either app set (no lost update), and ClickHouse
    agrees with PostgreSQL."""
    ch = backends.clickhouse
    pairs = 4
    rng = random.Random(7)
    async with await _client(app) as a, await _client(second_app) as b:
        calls = []
        for k in range(pairs):
            anon, user = f"anon-{k}", f"user-{k}"
            for j in range(6):
                calls.append((a, event("view", anon, **{"$set": {f"a{j}": j}})))
                calls.append((b, event("view", user, **{"$set": {f"b{j}": j}})))
                calls.append((b, event("view", anon, **{"$set": {f"c{j}": j}})))
                calls.append((a, event("view", user, **{"$set": {f"d{j}": j}})))
            # Both apps see the same identify (as when a client retries through another process).
            for client in (a, b):
                calls.append((client, event("$identify", user, properties={"$anon_distinct_id": anon},
                                            **{"$set": {"email": f"{user}@x"}})))
        rng.shuffle(calls)
        await asyncio.gather(*(_post(client, env, ev) for client, ev in calls))

    persons, dids = await _pg_state(backends, env.id)
    assert len(persons) == pairs
    wanted = {f"{p}{j}": j for p in "abcd" for j in range(6)}
    for k in range(pairs):
        pid = dids[f"anon-{k}"]
        assert dids[f"user-{k}"] == pid
        assert persons[pid].properties == {**wanted, "email": f"user-{k}@x"}
        assert persons[pid].is_identified
        # The ClickHouse replica is the same state, at the same version.
        props, deleted, version = await _ch_person(ch, env.id, pid)
        assert (props, deleted, version) == (persons[pid].properties, 0, persons[pid].version)
        assert await person_of(ch, env.id, f"anon-{k}") == await person_of(ch, env.id, f"user-{k}") == str(pid)
    assert await unique_persons(ch, env.id) == pairs


def _events(*raws):
    now = datetime.now(timezone.utc)
    return [normalize(raw, now=now, sent_at=None, client_ip=None) for raw in raws]


async def test_stale_view_loses_the_race_and_is_prepared_again(env, backends):
    """Without the change stream (no Redis), a writer's view goes stale; its write is refused by the
    version check, prepared again from PostgreSQL, and nothing is lost."""
    w1 = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=None)
    w2 = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=None)
    w1.start()
    w2.start()
    try:
        await w1.submit(env.id, _events(event("e", "race", **{"$set": {"first": 1}})))
        await w2.submit(env.id, _events(event("e", "race", **{"$set": {"second": 2}})))
        before = metrics.get("capture_batches_conflicted_total")
        # w1 still holds the person at version 0; PostgreSQL has version 1.
        assert await w1.submit(env.id, _events(event("e", "race", **{"$set": {"third": 3}}))) == [True]
        assert metrics.get("capture_batches_conflicted_total") == before + 1
    finally:
        await w1.stop()
        await w2.stop()
    persons, _ = await _pg_state(backends, env.id)
    (person,) = persons.values()
    assert person.properties == {"first": 1, "second": 2, "third": 3}
    assert person.version == 2
    props, _, version = await _ch_person(backends.clickhouse, env.id, person.id)
    assert (props, version) == (person.properties, 2)


async def test_change_stream_refreshes_other_views(env, backends):
    """With Redis, a change committed by one writer is dropped from the other's view before its next
    batch, so that batch's rows carry the fresh person properties and no race is lost."""
    w1 = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=backends.redis)
    w2 = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=backends.redis)
    w1.start()
    w2.start()
    try:
        await w1.submit(env.id, _events(event("one", "fresh", **{"$set": {"plan": "free"}})))
        await w2.submit(env.id, _events(event("two", "fresh", **{"$set": {"plan": "pro"}})))
        before = metrics.get("capture_batches_conflicted_total")
        await w1.submit(env.id, _events(event("three", "fresh")))
        assert metrics.get("capture_batches_conflicted_total") == before
    finally:
        await w1.stop()
        await w2.stop()
    result = await backends.clickhouse.execute(
        "SELECT event, person_properties FROM events WHERE team_id = {t:Int64} ORDER BY event", {"t": env.id})
    assert {name: json.loads(props)["plan"] for name, props in result.rows} == {
        "one": "free", "three": "pro", "two": "pro"}


async def test_group_updates_from_two_writers_merge(env, backends):
    w1 = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=None)
    w2 = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=None)
    w1.start()
    w2.start()

    def identify(props):
        return event("$groupidentify", "g", properties={"$group_type": "company", "$group_key": "acme",
                                                        "$group_set": props})
    try:
        await w1.submit(env.id, _events(identify({"a": 1})))
        await w2.submit(env.id, _events(identify({"b": 2})))
        await w1.submit(env.id, _events(identify({"c": 3})))  # stale view: refused, then redone
        # w1 reloaded the group when its write was refused: its rows carry the merged state.
        await w1.submit(env.id, _events(event("used", "g", properties={"$groups": {"company": "acme"}})))
    finally:
        await w1.stop()
        await w2.stop()
    merged = {"a": 1, "b": 2, "c": 3}
    async with backends.sessionmaker() as session:
        (group,) = (await session.scalars(select(Group).where(Group.environment_id == env.id))).all()
    assert (group.group_properties, group.version) == (merged, 2)
    result = await backends.clickhouse.execute(
        "SELECT argMax(group_properties, updated_at) FROM groups WHERE team_id = {t:Int64}", {"t": env.id})
    assert json.loads(result.rows[0][0]) == merged
    result = await backends.clickhouse.execute(
        "SELECT group0_properties FROM events WHERE team_id = {t:Int64} AND event = 'used'", {"t": env.id})
    assert json.loads(result.rows[0][0]) == merged


@pytest.mark.parametrize("seed", [1, 3])
async def test_two_apps_random_merges_keep_invariants(app, second_app, env, backends, seed):
    """Random `$set`s, identifies and aliases over a few distinct ids, through both apps at once:
    no property update is lost, every distinct id maps to a live person, and ClickHouse's replica
    rows equal PostgreSQL's state."""
    ch = backends.clickhouse
    rng = random.Random(seed)
    ids = [f"u{i}" for i in range(12)]
    async with await _client(app) as a, await _client(second_app) as b:
        calls = []
        for n in range(150):
            client, did, roll = rng.choice((a, b)), rng.choice(ids), rng.random()
            if roll < 0.15:
                calls.append((client, event("$identify", did, properties={"$anon_distinct_id": rng.choice(ids)})))
            elif roll < 0.2:
                calls.append((client, event("$create_alias", did, properties={"alias": rng.choice(ids)})))
            else:
                calls.append((client, event("e", did, **{"$set": {f"k{n}": n}})))
        limit = asyncio.Semaphore(16)

        async def post(client, ev):
            async with limit:
                await _post(client, env, ev)

        await asyncio.gather(*(post(client, ev) for client, ev in calls))
    persons, dids = await _pg_state(backends, env.id)
    for did, pid in dids.items():
        assert pid in persons, did
        assert await person_of(ch, env.id, did) == str(pid)
    for pid, person in persons.items():
        assert await _ch_person(ch, env.id, pid) == (person.properties, 0, person.version)
    stored = set().union(*(p.properties for p in persons.values()))
    assert {k for ev in (ev for _, ev in calls) for k in ev.get("$set", {})} <= stored

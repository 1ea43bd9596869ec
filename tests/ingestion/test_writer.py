"""The micro-batching writer: coalescing, and no acknowledgement without a write."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from app.ingestion import metrics
from app.ingestion.events import normalize
from app.ingestion.writer import IngestionWriter, WriterUnavailable
from app.query_engine.executor.chdb import ChdbExecutor
from tests.ingestion.helpers import count


def make_events(n: int, prefix: str = "w"):
    now = datetime.now(timezone.utc)
    return [normalize({"event": "w", "distinct_id": f"{prefix}-{i}", "uuid": str(uuid.uuid4())},
                      now=now, sent_at=None, client_ip=None) for i in range(n)]


async def test_concurrent_requests_share_inserts(app, env, backends):
    writer = app.state.ingestion.writer
    before = metrics.get("capture_batches_total")
    results = await asyncio.gather(*(writer.submit(env.id, make_events(10, f"c{i}")) for i in range(20)))
    assert all(flags == [True] * 10 for flags in results)
    assert metrics.get("capture_batches_total") - before < 20
    assert await count(backends.clickhouse, env.id) == 200


async def test_failed_write_is_not_acknowledged_and_retry_is_stored(app, env, backends, tmp_path):
    # A real executor that is closed: every insert fails the way an unreachable ClickHouse does.
    closed = ChdbExecutor(str(tmp_path / "never-opened"), "tally")
    await closed.close()
    broken = IngestionWriter(closed, backends.sessionmaker, redis=backends.redis)
    broken.start()
    events = make_events(5)
    with pytest.raises(WriterUnavailable):
        await broken.submit(env.id, events)
    await broken.stop()
    assert await count(backends.clickhouse, env.id) == 0
    # The retry (same uuids) reaches the real writer: its dedup claims were released, so it is stored.
    assert await app.state.ingestion.writer.submit(env.id, events) == [True] * 5
    assert await count(backends.clickhouse, env.id) == 5
    assert await app.state.ingestion.writer.submit(env.id, events) == [False] * 5


async def test_stop_flushes_accepted_events(env, backends):
    writer = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=backends.redis)
    writer.start()
    pending = [asyncio.create_task(writer.submit(env.id, make_events(50, f"s{i}"))) for i in range(4)]
    await asyncio.sleep(0)  # submitted, not yet written
    await writer.stop()
    assert all(t.done() and t.result() == [True] * 50 for t in pending)
    assert await count(backends.clickhouse, env.id) == 200
    with pytest.raises(WriterUnavailable):
        await writer.submit(env.id, make_events(1))


async def test_resend_to_another_process_is_found_in_clickhouse(app, env, backends):
    events = make_events(8, "resend")
    assert await app.state.ingestion.writer.submit(env.id, events) == [True] * 8
    # A second writer stands for another API process: its in-process set has never seen these
    # uuids, the Redis claims send it to ClickHouse, which has them.
    other = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=backends.redis)
    other.start()
    try:
        assert await other.submit(env.id, events + make_events(2, "resend-new")) == [False] * 8 + [True] * 2
    finally:
        await other.stop()
    assert await count(backends.clickhouse, env.id) == 10


async def test_claim_left_by_a_crashed_process_does_not_drop_the_event(app, env, backends):
    from app import clock
    from app.ingestion.dedup import day_sets, member

    events = make_events(3, "orphan")
    # Claimed by a process that died before writing: the claim exists, the rows do not.
    await backends.redis.sadd(day_sets(clock.now())[0][0], *[member(env.id, ev.uuid) for ev in events])
    assert await app.state.ingestion.writer.submit(env.id, events) == [True] * 3
    assert await count(backends.clickhouse, env.id) == 3


async def test_a_resend_found_by_the_claims_leaves_the_person_as_it_was(app, env, backends):
    """The claims are awaited after the batch was processed: when they find a duplicate, its person
    changes must not stay applied (§8: side effects of a duplicate are not applied twice)."""
    from sqlalchemy import select

    from app.models import Person

    def ev(name: str, plan: str | None = None):
        raw = {"event": name, "distinct_id": "resent-user", "uuid": str(uuid.uuid4())}
        if plan is not None:
            raw["$set"] = {"plan": plan}
        return normalize(raw, now=datetime.now(timezone.utc), sent_at=None, client_ip=None)

    first, later = ev("signed up", "free"), ev("upgraded", "pro")
    writer = app.state.ingestion.writer
    assert await writer.submit(env.id, [first]) == [True]
    assert await writer.submit(env.id, [later]) == [True]
    # The first event is resent to another process (its in-process set has never seen it), with a new one.
    other = IngestionWriter(backends.clickhouse, backends.sessionmaker, redis=backends.redis)
    other.start()
    before = metrics.get("capture_batches_reprocessed_total")
    try:
        assert await other.submit(env.id, [ev("visited"), first]) == [True, False]
    finally:
        await other.stop()
    assert metrics.get("capture_batches_reprocessed_total") == before + 1
    async with backends.sessionmaker() as session:
        plans = (await session.execute(select(Person.properties).where(Person.environment_id == env.id))).scalars().all()
    assert [p.get("plan") for p in plans] == ["pro"]
    rows = await backends.clickhouse.execute(
        "SELECT event, JSONExtractString(person_properties, 'plan') FROM events WHERE team_id = {t:Int64}"
        " ORDER BY event", {"t": env.id})
    assert rows.rows == [("signed up", "free"), ("upgraded", "pro"), ("visited", "pro")]

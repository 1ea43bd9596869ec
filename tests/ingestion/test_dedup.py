"""Write-time dedup claims (app/ingestion/dedup.py) against the session's real Redis and ClickHouse."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from app.ingestion.dedup import CLAIM_TTL, Deduplicator, redis_key

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def _candidates(team_id: int, n: int) -> list:
    return [((team_id, uuid.uuid4()), "e", f"d{i}", NOW) for i in range(n)]


async def test_fresh_keys_are_claimed_once(env, backends):
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    candidates = _candidates(env.id, 300)
    duplicates, claimed = await dedup.claim(candidates)
    assert duplicates == set() and claimed == [c[0] for c in candidates]
    for key in claimed[:3]:
        assert 0 < await backends.redis.ttl(redis_key(*key)) <= CLAIM_TTL
    # Claimed already: nothing is claimed again; ClickHouse has none of them, so none is a duplicate.
    mixed = candidates[:100] + _candidates(env.id, 5)
    duplicates, claimed = await dedup.claim(mixed)
    assert duplicates == set() and claimed == [c[0] for c in mixed[100:]]


async def test_released_keys_can_be_claimed_again(env, backends):
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    candidates = _candidates(env.id, 4)
    _, claimed = await dedup.claim(candidates)
    await dedup.release(claimed[:2])
    _, again = await dedup.claim(candidates)
    assert again == claimed[:2]


async def test_without_redis_clickhouse_answers(env, backends):
    dedup = Deduplicator(backends.clickhouse, None)
    duplicates, claimed = await dedup.claim(_candidates(env.id, 3))
    assert duplicates == set() and claimed == []

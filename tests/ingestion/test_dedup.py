"""Write-time dedup claims (app/ingestion/dedup.py) against the session's real Redis and ClickHouse."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app import clock
from app.ingestion import dedup as dedup_module
from app.ingestion.dedup import CLAIM_DAYS, DAY_SECONDS, Deduplicator, day_sets, member

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def _candidates(team_id: int, n: int) -> list:
    return [((team_id, uuid.uuid4()), "e", f"d{i}", NOW) for i in range(n)]


@pytest.fixture
def frozen():
    clock.freeze(NOW)
    yield NOW
    clock.freeze(None)


async def test_fresh_keys_are_claimed_once(env, backends, frozen):
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    candidates = _candidates(env.id, 300)
    duplicates, claimed = await dedup.claim(candidates)
    assert duplicates == set() and claimed == [c[0] for c in candidates]
    today = day_sets(NOW)[0][0]
    assert all(await backends.redis.smismember(today, [member(*key) for key in claimed[:3]]))
    # Today's set leaves the window CLAIM_DAYS days after today began.
    assert 0 < await backends.redis.ttl(today) <= (CLAIM_DAYS * DAY_SECONDS) - 12 * 3600
    # Claimed already: nothing is claimed again; ClickHouse has none of them, so none is a duplicate.
    mixed = candidates[:100] + _candidates(env.id, 5)
    duplicates, claimed = await dedup.claim(mixed)
    assert duplicates == set() and claimed == [c[0] for c in mixed[100:]]


async def test_a_key_twice_in_one_call_is_claimed_once(env, backends, frozen):
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    one, two = _candidates(env.id, 2)
    duplicates, claimed = await dedup.claim([one, two, one])
    assert duplicates == set() and claimed == [one[0], two[0]]


async def test_claims_last_while_their_day_is_in_the_window(env, backends, frozen):
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    candidates = _candidates(env.id, 4)
    _, claimed = await dedup.claim(candidates)
    assert len(claimed) == 4
    # CLAIM_DAYS - 1 days later (to the second) the claims still stand ...
    clock.freeze(NOW + timedelta(days=CLAIM_DAYS - 1))
    _, again = await dedup.claim(candidates)
    assert again == []
    # ... and once their day has left the window they are gone.
    clock.freeze(NOW + timedelta(days=CLAIM_DAYS))
    _, again = await dedup.claim(candidates)
    assert again == [c[0] for c in candidates]


async def test_the_window_is_between_its_days(frozen):
    sets, ttl = day_sets(datetime(2026, 11, 26, 23, 59, 59, tzinfo=timezone.utc))
    day = int(datetime(2026, 11, 26, tzinfo=timezone.utc).timestamp()) // DAY_SECONDS
    assert sets == [f"{{tally:dedup}}:day:{day - back}" for back in range(CLAIM_DAYS)]
    assert ttl == (CLAIM_DAYS - 1) * DAY_SECONDS + 1


async def test_released_keys_can_be_claimed_again(env, backends, frozen):
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    candidates = _candidates(env.id, 4)
    _, claimed = await dedup.claim(candidates)
    await dedup.release(claimed[:2])
    _, again = await dedup.claim(candidates)
    assert again == claimed[:2]


async def test_release_after_the_day_turned_still_gives_the_claims_back(env, backends, frozen):
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    candidates = _candidates(env.id, 3)
    _, claimed = await dedup.claim(candidates)
    clock.freeze(NOW + timedelta(days=1))
    await dedup.release(claimed)
    _, again = await dedup.claim(candidates)
    assert again == claimed


async def test_large_batches_are_claimed_in_chunks(env, backends, frozen):
    # Lua's unpack() takes a few thousand values at most: the script reads and writes in chunks.
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    candidates = _candidates(env.id, 12_000)
    duplicates, claimed = await dedup.claim(candidates)
    assert duplicates == set() and len(claimed) == 12_000
    _, again = await dedup.claim(candidates[::7])
    assert again == []
    await dedup.release(claimed)
    _, again = await dedup.claim(candidates[:5])
    assert again == [c[0] for c in candidates[:5]]


async def test_without_redis_clickhouse_answers(env, backends):
    dedup = Deduplicator(backends.clickhouse, None)
    duplicates, claimed = await dedup.claim(_candidates(env.id, 3))
    assert duplicates == set() and claimed == []


async def test_a_redis_error_falls_back_to_clickhouse(env, backends, frozen, monkeypatch):
    dedup = Deduplicator(backends.clickhouse, backends.redis)
    monkeypatch.setattr(dedup_module, "CLAIM_DAYS", 0)  # no sets at all: the script's call fails
    duplicates, claimed = await dedup.claim(_candidates(env.id, 3))
    assert duplicates == set() and claimed == []

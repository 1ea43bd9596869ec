"""single_flight on the real Redis: one computation for concurrent callers, the publication for
other processes, freshness by arrival time, and failures that are never shared."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest

from app.services import coalescing


@pytest.fixture
def key() -> str:
    return f"cache_test_{uuid.uuid4().hex}"


class Counter:
    def __init__(self, delay: float = 0.05, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail

    async def __call__(self) -> dict:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("boom")
        return {"n": self.calls}


class TestSingleFlight:
    async def test_concurrent_callers_share_one_computation(self, backends, key):
        compute = Counter()
        waits = []

        async def on_wait():
            waits.append(1)

        results = await asyncio.gather(*[coalescing.single_flight(backends.redis, key, compute, on_wait=on_wait)
                                         for _ in range(20)])
        assert compute.calls == 1 and results == [{"n": 1}] * 20
        assert len(waits) == 19  # every follower released its resources once before waiting
        assert await backends.redis.get(coalescing._lock_key(key)) is None  # released with the publication
        latest = orjson.loads(await backends.redis.get(coalescing._latest_key(key)))
        assert latest["result"] == {"n": 1} and isinstance(latest["finished_us"], int)
        seconds, micros = await backends.redis.time()
        assert abs(latest["finished_us"] - (seconds * 1_000_000 + micros)) < 5_000_000

    async def test_result_finished_after_arrival_is_reused(self, backends, key):
        compute = Counter(delay=0)
        arrived = time.perf_counter()
        await coalescing.single_flight(backends.redis, key, compute, arrived_at=arrived)
        # A request that arrived before that computation finished reuses it...
        assert await coalescing.single_flight(backends.redis, key, compute, arrived_at=arrived) == {"n": 1}
        assert compute.calls == 1
        # ...one that arrived afterwards computes again.
        await asyncio.sleep(0.01)
        assert await coalescing.single_flight(backends.redis, key, compute,
                                              arrived_at=time.perf_counter()) == {"n": 2}

    async def test_failures_are_not_shared(self, backends, key):
        compute = Counter(fail=True)
        results = await asyncio.gather(*[coalescing.single_flight(backends.redis, key, compute) for _ in range(3)],
                                       return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert compute.calls == 3  # each follower ran on its own after the leader failed
        assert await backends.redis.get(coalescing._lock_key(key)) is None

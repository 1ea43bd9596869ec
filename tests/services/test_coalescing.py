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

    async def test_followers_in_the_process_are_woken_without_polling(self, backends, key, monkeypatch):
        # A follower that polled Redis would wait at least one poll interval after the leader.
        monkeypatch.setattr(coalescing, "POLL_SECONDS", 5.0)
        compute = Counter(delay=0.2)
        finished: list[float] = []

        async def call():
            result = await coalescing.single_flight(backends.redis, key, compute)
            finished.append(time.perf_counter())
            return result

        started = time.perf_counter()
        results = await asyncio.gather(*[call() for _ in range(30)])
        assert compute.calls == 1 and results == [{"n": 1}] * 30
        assert max(finished) - started < 2.0
        assert coalescing._electing == {} and coalescing._running == {} and coalescing._local == {}

    async def test_process_followers_skip_redis(self, backends, key, monkeypatch):
        calls = {"pipelines": 0}
        real = backends.redis.pipeline

        def counting(*args, **kwargs):
            calls["pipelines"] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(backends.redis, "pipeline", counting)
        compute = Counter(delay=0.1)
        results = await asyncio.gather(*[coalescing.single_flight(backends.redis, key, compute) for _ in range(10)])
        assert compute.calls == 1 and results == [{"n": 1}] * 10
        assert calls["pipelines"] == 1  # only the caller that elected the leader went to Redis

    async def test_a_leader_elsewhere_is_followed_through_redis(self, backends, key):
        # Another process holds the lock: callers here follow its publication.
        await backends.redis.set(coalescing._lock_key(key), "elsewhere", px=5_000)
        compute = Counter()

        async def publish():
            await asyncio.sleep(0.05)
            await backends.redis.set(coalescing._result_key(key, "elsewhere"), orjson.dumps({"n": "remote"}), ex=60)
            await backends.redis.delete(coalescing._lock_key(key))

        publisher = asyncio.create_task(publish())
        results = await asyncio.gather(*[coalescing.single_flight(backends.redis, key, compute) for _ in range(5)])
        await publisher
        assert compute.calls == 0 and results == [{"n": "remote"}] * 5

    async def test_without_redis_nobody_waits_for_anybody(self, key):
        from redis.asyncio import Redis

        dead = Redis(unix_socket_path="/nonexistent/redis.sock", socket_connect_timeout=0.1)
        compute = Counter(delay=0.2)
        started = time.perf_counter()
        results = await asyncio.gather(*[coalescing.single_flight(dead, key, compute) for _ in range(5)])
        assert compute.calls == 5 and len(results) == 5
        assert time.perf_counter() - started < 0.2 * 5 * 0.6  # concurrently, not one after the other
        await dead.aclose()

    async def test_a_failed_local_election_lets_waiters_run_on_their_own(self, backends, key):
        compute = Counter(fail=True, delay=0.05)
        results = await asyncio.gather(*[coalescing.single_flight(backends.redis, key, compute) for _ in range(4)],
                                       return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results) and compute.calls == 4
        assert coalescing._electing == {} and coalescing._running == {}


class TestFreshnessUnderASlowLoop:
    async def test_a_result_published_before_arrival_is_not_reused_when_the_reply_is_seen_late(
            self, backends, key, monkeypatch):
        """The caller's arrival is placed on Redis' clock from the moment the command was sent, not
        from when a busy loop got round to the reply: otherwise a result published just before a
        sequential request arrived looked fresh to it."""
        seconds, micros = await backends.redis.time()
        just_before = int(seconds) * 1_000_000 + int(micros) - 2_000  # published 2 ms before we arrive
        await backends.redis.set(coalescing._latest_key(key),
                                 orjson.dumps({"finished_us": just_before, "result": {"n": "old"}}))
        arrived_at = time.perf_counter()
        pipeline_class = type(backends.redis.pipeline())
        original = pipeline_class.execute

        async def late(self, *args, **kwargs):
            replies = await original(self, *args, **kwargs)
            await asyncio.sleep(0.1)  # the loop was busy: the reply is handled 100 ms later
            return replies

        monkeypatch.setattr(pipeline_class, "execute", late)
        compute = Counter(delay=0)
        assert await coalescing.single_flight(backends.redis, key, compute, arrived_at=arrived_at) == {"n": 1}
        assert compute.calls == 1

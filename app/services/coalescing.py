"""Query coalescing (spec/API.md §4), applied where the expensive work happens: the computation of
one cache key.

The first request to compute a key takes a Redis lock (60 s, extended every 5 s while it runs) and
publishes its response under the lock's token for 60 s. Concurrent requests for the same key wait
for that publication and reuse it: in other processes by polling Redis, in the leader's own process
without any round trip (they await the leader's result, or the first local caller's election). Each
follower has already passed its own authentication, scope, environment and object-permission
checks (the lock is taken only after the request has loaded the insight), so nothing is shared
with a caller who could not compute it: PostHog's follower leak (§4, Q12) cannot happen. Errors are not shared: a follower whose leader failed,
crashed (lock gone without a publication) or took too long computes on its own. Without Redis
there is no coalescing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

LOCK_MS = 60_000
HEARTBEAT_SECONDS = 5.0
PUBLISH_SECONDS = 60
POLL_SECONDS = 0.01
MAX_WAIT_SECONDS = 120.0


def _lock_key(key: str) -> str:
    return f"coalesce:lock:{key}"


def _result_key(key: str, token: str) -> str:
    return f"coalesce:result:{key}:{token}"


async def _heartbeat(redis: Redis, key: str, token: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        with contextlib.suppress(RedisError):
            if (await redis.get(_lock_key(key))) in (token, token.encode()):
                await redis.pexpire(_lock_key(key), LOCK_MS)


def _latest_key(key: str) -> str:
    return f"coalesce:latest:{key}"


async def server_ms(redis: Redis) -> int:
    """Redis' clock, shared by every process (the app clock may be frozen)."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000



async def single_flight(redis: Redis, key: str, compute: Callable[[], Awaitable[dict[str, Any]]], *,
                        arrived_at: float | None = None,
                        on_wait: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    """Run `compute` once for concurrent callers with the same key and give all of them its result.

    `arrived_at` (`time.perf_counter()`) is when the caller's request arrived: a result whose
    computation finished after that moment is as fresh as one the caller would compute itself, so
    it is reused too (requests that arrive together but reach this point after the leader finished
    still share its result). `on_wait` runs once before a follower starts waiting (the caller
    releases its database connection there). The first attempt costs one Redis round trip.

    Within a process, callers of one key do not each go to Redis: while one of them (the first)
    elects a leader through Redis, the others wait for its outcome in the process, and a leader
    running here is joined directly; either way they are woken the moment the result is set. They
    share only a result computed under the Redis lock (never one computed because Redis was down)."""
    joined, on_wait = await _join_local(key, arrived_at, on_wait)
    if joined is not None:
        return joined
    gate = _electing.get(key)
    if gate is not None:
        if on_wait is not None:
            await on_wait()
            on_wait = None
        try:
            outcome = await asyncio.wait_for(asyncio.shield(gate), MAX_WAIT_SECONDS)
        except asyncio.TimeoutError:
            outcome = None
        if outcome is not None and (arrived_at is None or outcome[1] >= arrived_at):
            return outcome[0]
        result, _ = await _attempt(redis, key, compute, arrived_at, on_wait, None)
        return result
    gate = asyncio.get_running_loop().create_future()
    _electing[key] = gate

    def open_gate(outcome: tuple[dict[str, Any], float] | None) -> None:
        if _electing.get(key) is gate:
            del _electing[key]
        if not gate.done():
            gate.set_result(outcome)

    try:
        result, finished_at = await _attempt(redis, key, compute, arrived_at, on_wait, open_gate)
    finally:
        open_gate(None)  # no-op after a success
    return result


# key → the future of the caller that is electing a leader for that key through Redis, resolved with
# (result, finished_at) when the result was computed under the lock, None otherwise.
_electing: dict[str, asyncio.Future] = {}


async def _attempt(redis: Redis, key: str, compute: Callable[[], Awaitable[dict[str, Any]]],
                   arrived_at: float | None, on_wait: Callable[[], Awaitable[None]] | None,
                   open_gate: Callable[[tuple[dict[str, Any], float] | None], None] | None,
                   ) -> tuple[dict[str, Any], float | None]:
    """(result, finished_at): finished_at (perf_counter) when the result was computed under the
    lock, a moment before which it had not finished (by this caller, a leader it joined in the
    process or one it followed through Redis); None otherwise (reused as the latest result). `open_gate` is
    called with the outcome as soon as it is known, and with None before computing without the
    lock, so that callers waiting in the process never wait for a computation they cannot share."""
    def share(result: dict[str, Any], finished_at: float | None) -> tuple[dict[str, Any], float | None]:
        if open_gate is not None:
            open_gate((result, finished_at) if finished_at is not None else None)
        return result, finished_at

    async def alone() -> tuple[dict[str, Any], float | None]:
        if open_gate is not None:
            open_gate(None)
        return await compute(), None

    waited = 0.0
    first = True
    while True:
        token = uuid.uuid4().hex
        sent = time.perf_counter()
        try:
            async with redis.pipeline(transaction=False) as pipe:
                if first:
                    pipe.time()
                    pipe.get(_latest_key(key))
                pipe.set(_lock_key(key), token, nx=True, px=LOCK_MS)
                pipe.get(_lock_key(key))
                replies = await pipe.execute()
        except RedisError:
            return await alone()
        if first:
            first = False
            (seconds, micros), latest_raw, acquired, holder = replies
            if latest_raw is not None and arrived_at is not None:
                # Microseconds on both sides: a computation that finished a moment before this
                # request arrived must not count as fresh by rounding. Redis read its clock after
                # `sent`, so measuring the wait up to `sent` (not up to the reply, which a busy loop
                # may see tens of ms later) can only place the arrival later: never a stale reuse.
                now_us = int(seconds) * 1_000_000 + int(micros)
                not_before_us = now_us - int((sent - arrived_at) * 1_000_000)
                latest = orjson.loads(latest_raw)
                if latest.get("finished_us", 0) >= not_before_us:
                    if acquired:
                        with contextlib.suppress(RedisError):
                            await _release(redis, key, token)
                    return share(latest["result"], None)
        else:
            acquired, holder = replies
        if acquired:
            return await _lead(redis, key, token, compute, share)
        if holder is None:
            continue  # the leader finished between our two commands: try to lead
        if on_wait is not None:
            await on_wait()
            on_wait = None
        leader = holder.decode() if isinstance(holder, bytes) else holder
        published, finished_at = await _follow(redis, key, leader, sent)
        if published is not None:
            return share(published, finished_at)
        waited += POLL_SECONDS
        if waited > MAX_WAIT_SECONDS:
            return await alone()


async def _release(redis: Redis, key: str, token: str) -> None:
    if (await redis.get(_lock_key(key))) in (token, token.encode()):
        await redis.delete(_lock_key(key))


# Leaders running in this process, so local followers await them instead of polling Redis
# (50 pollers cost more CPU than the query they wait for). Followers in other processes poll.
_local: dict[tuple[str, str], "_Running"] = {}


class _Running:
    """The leader of a key running in this process: its outcome, and when it finished (perf_counter)."""

    __slots__ = ("future", "finished_at")

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future
        self.finished_at: float | None = None


# key → the leader of that key running in this process (it holds the Redis lock): a request for
# the key joins it at once, without a Redis round trip, and is woken the moment its result is set.
_running: dict[str, _Running] = {}


async def _join_local(key: str, arrived_at: float | None, on_wait: Callable[[], Awaitable[None]] | None):
    """(result, on_wait): the result of this process' leader of `key` if one is running (or
    finished after the caller arrived, and is still publishing); None when there is none or it
    failed. `on_wait` comes back None once it has run."""
    running = _running.get(key)
    if running is None:
        return None, on_wait
    if running.future.done():
        result = running.future.result()
        fresh = arrived_at is not None and running.finished_at is not None and running.finished_at >= arrived_at
        return (result if fresh else None), on_wait
    if on_wait is not None:
        await on_wait()
    try:
        return await asyncio.wait_for(asyncio.shield(running.future), MAX_WAIT_SECONDS), None
    except asyncio.TimeoutError:
        return None, None


# Publishes a leader's result (for this request's followers in other processes, and as the latest
# result of the key) stamped with Redis' clock, and releases the lock if still ours: one round trip.
_PUBLISH = """
local t = redis.call('TIME')
local finished = t[1] .. string.format('%06d', tonumber(t[2]))
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], '{"finished_us":' .. finished .. ',"result":' .. ARGV[1] .. '}', 'EX', ARGV[2])
if redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('DEL', KEYS[3])
end
return 1
"""


async def _lead(redis: Redis, key: str, token: str, compute: Callable[[], Awaitable[dict[str, Any]]],
                share: Callable[[dict[str, Any], float | None], tuple[dict[str, Any], float | None]],
                ) -> tuple[dict[str, Any], float | None]:
    beat = asyncio.create_task(_heartbeat(redis, key, token))
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    running = _local[(key, token)] = _running[key] = _Running(done)
    published = False
    try:
        result = await compute()
        # Followers in this process go on at once; the others get the publication below. Until it
        # is out, followers that find this leader in Redis still find its result here (no polling).
        running.finished_at = time.perf_counter()
        done.set_result(result)
        outcome = share(result, running.finished_at)
        with contextlib.suppress(RedisError):
            await redis.register_script(_PUBLISH)(
                keys=[_result_key(key, token), _latest_key(key), _lock_key(key)],
                args=[orjson.dumps(result), PUBLISH_SECONDS, token])
            published = True
        return outcome
    finally:
        _local.pop((key, token), None)
        if _running.get(key) is running:
            del _running[key]
        if not done.done():
            done.set_result(None)  # the leader failed: followers compute on their own
        beat.cancel()
        if not published:
            with contextlib.suppress(RedisError):
                await _release(redis, key, token)


async def _follow(redis: Redis, key: str, leader: str, seen_running: float,
                  ) -> tuple[dict[str, Any] | None, float | None]:
    """(the leader's result, a moment (perf_counter) before which it had not finished), or (None,
    None) when the leader is gone without publishing (failed or crashed). `seen_running`: when
    the caller asked the Redis command that found the leader holding the lock (a leader publishes
    and releases in one step, so it had not finished then)."""
    local = _local.get((key, leader))
    if local is not None:
        try:
            result = await asyncio.wait_for(asyncio.shield(local.future), MAX_WAIT_SECONDS)
        except asyncio.TimeoutError:
            return None, None
        return result, (local.finished_at if result is not None else None)
    deadline = asyncio.get_running_loop().time() + MAX_WAIT_SECONDS
    try:
        while asyncio.get_running_loop().time() < deadline:
            raw = await redis.get(_result_key(key, leader))
            if raw is not None:
                return orjson.loads(raw), seen_running
            asked = time.perf_counter()
            current = await redis.get(_lock_key(key))
            if current is None or (current.decode() if isinstance(current, bytes) else current) != leader:
                raw = await redis.get(_result_key(key, leader))
                return (orjson.loads(raw), seen_running) if raw is not None else (None, None)
            seen_running = asked
            await asyncio.sleep(POLL_SECONDS)
    except RedisError:
        return None, None
    return None, None

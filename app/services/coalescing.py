"""Query coalescing (spec/API.md §4), applied where the expensive work happens: the computation of
one cache key.

The first request to compute a key takes a Redis lock (60 s, extended every 5 s while it runs) and
publishes its response under the lock's token for 60 s. Concurrent requests for the same key wait
for that publication and reuse it. Each follower has already passed its own authentication,
scope, environment and object-permission checks (the lock is taken only after the request has
loaded the insight), so nothing is shared with a caller who could not compute it: PostHog's
follower leak (§4, Q12) cannot happen. Errors are not shared: a follower whose leader failed,
crashed (lock gone without a publication) or took too long computes on its own. Without Redis
there is no coalescing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
                        not_before_ms: int | None = None) -> dict[str, Any]:
    """Run `compute` once for concurrent callers with the same key and give all of them its result.

    `not_before_ms` is when the caller's request arrived: a result whose computation finished after
    that moment is as fresh as one the caller would compute itself, so it is reused too (requests
    that arrive together but reach this point after the leader finished still share its result)."""
    waited = 0.0
    if not_before_ms is not None:
        try:
            raw = await redis.get(_latest_key(key))
        except RedisError:
            raw = None
        if raw is not None:
            latest = orjson.loads(raw)
            if latest.get("finished_ms", 0) >= not_before_ms:
                return latest["result"]
    while True:
        token = uuid.uuid4().hex
        try:
            acquired = await redis.set(_lock_key(key), token, nx=True, px=LOCK_MS)
            leader_token = None if acquired else await redis.get(_lock_key(key))
        except RedisError:
            return await compute()
        if acquired:
            return await _lead(redis, key, token, compute)
        if leader_token is None:
            continue  # the leader finished between our two calls: try to lead
        leader = leader_token.decode() if isinstance(leader_token, bytes) else leader_token
        published = await _follow(redis, key, leader)
        if published is not None:
            return published
        waited += POLL_SECONDS
        if waited > MAX_WAIT_SECONDS:
            return await compute()


# Leaders running in this process, so local followers await them instead of polling Redis
# (50 pollers cost more CPU than the query they wait for). Followers in other processes poll.
_local: dict[tuple[str, str], asyncio.Future] = {}


async def _lead(redis: Redis, key: str, token: str, compute: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    beat = asyncio.create_task(_heartbeat(redis, key, token))
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    _local[(key, token)] = done
    result = None
    try:
        result = await compute()
        with contextlib.suppress(RedisError):
            payload = orjson.dumps(result)
            await redis.set(_result_key(key, token), payload, ex=PUBLISH_SECONDS)
            finished = await server_ms(redis)
            await redis.set(_latest_key(key), b'{"finished_ms":%d,"result":%s}' % (finished, payload),
                            ex=PUBLISH_SECONDS)
        return result
    finally:
        _local.pop((key, token), None)
        done.set_result(result)  # None: the leader failed, followers compute on their own
        beat.cancel()
        with contextlib.suppress(RedisError):
            if (await redis.get(_lock_key(key))) in (token, token.encode()):
                await redis.delete(_lock_key(key))


async def _follow(redis: Redis, key: str, leader: str) -> dict[str, Any] | None:
    """The leader's result, or None when the leader is gone without publishing (failed or crashed)."""
    local = _local.get((key, leader))
    if local is not None:
        try:
            return await asyncio.wait_for(asyncio.shield(local), MAX_WAIT_SECONDS)
        except asyncio.TimeoutError:
            return None
    deadline = asyncio.get_running_loop().time() + MAX_WAIT_SECONDS
    try:
        while asyncio.get_running_loop().time() < deadline:
            raw = await redis.get(_result_key(key, leader))
            if raw is not None:
                return orjson.loads(raw)
            current = await redis.get(_lock_key(key))
            if current is None or (current.decode() if isinstance(current, bytes) else current) != leader:
                raw = await redis.get(_result_key(key, leader))
                return orjson.loads(raw) if raw is not None else None
            await asyncio.sleep(POLL_SECONDS)
    except RedisError:
        return None
    return None

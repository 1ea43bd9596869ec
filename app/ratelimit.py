"""Per-key, per-environment rate limits in Redis (spec/API.md §1.9).

Each throttle class has a per-minute and a per-hour budget (insight routes: 240/minute and
1200/hour; element routes: 480/minute and 4800/hour; settings change the numbers,
`APP_RATE_LIMITS=off` disables them). Both windows are checked and counted by one Lua script, so a
request costs one Redis round trip. The windows are sliding-window counters: the previous fixed
window's count weighted by how much of it still overlaps the sliding window, plus the current
one. A request is counted only if every window allows it. When Redis is unavailable requests are
let through: throttling protects the service, it must not take it down.
"""

from __future__ import annotations

import logging
import math
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.errors import Throttled
from app.settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "tally_rl"
MINUTE, HOUR = 60, 3600

# KEYS: per window, the previous and the current bucket. ARGV: now (seconds, float), then per
# window its length and limit. Returns 0 when allowed, else the seconds to wait (≥ 1).
_SCRIPT = """
local now = tonumber(ARGV[1])
local n = (#ARGV - 1) / 2
local wait = 0
for i = 1, n do
  local length = tonumber(ARGV[2 * i])
  local limit = tonumber(ARGV[2 * i + 1])
  local previous = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local current = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local elapsed = now % length
  local weighted = math.floor(previous * (length - elapsed) / length) + current
  if weighted + 1 > limit then
    -- wait for the current window to end, or for the previous one's weight to shrink enough
    local w = length - elapsed
    if current + 1 <= limit and previous > 0 then
      w = (weighted + 1 - limit) * length / previous
    end
    w = math.max(1, math.ceil(w))
    if w > wait then wait = w end
  end
end
if wait > 0 then
  return wait
end
for i = 1, n do
  local length = tonumber(ARGV[2 * i])
  redis.call('INCR', KEYS[2 * i])
  redis.call('EXPIRE', KEYS[2 * i], 2 * length)
end
return 0
"""


def limits_uri(redis_url: str) -> str:
    """The `limits` library's storage URI for a Redis URL (used by the capture limiter)."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


def _windows(per_minute: int, per_hour: int) -> tuple[tuple[int, int], ...]:
    return ((MINUTE, per_minute), (HOUR, per_hour))


class RateLimiter:
    """Throttle classes: `insight` (routes that run ClickHouse queries: insights, their activity,
    query and query status/cancel; PostHog's ClickHouse burst/sustained pair, §1.9) and `element`
    with the documented numbers, and `default` for every other keyed route (environments,
    definitions, dashboards; PostHog's general burst/sustained pair, 480/minute and 4800/hour)."""

    def __init__(self, settings: Settings, redis_url: str, *, redis: aioredis.Redis | None = None) -> None:
        self.enabled = settings.rate_limits == "on"
        self.windows: dict[str, tuple[tuple[int, int], ...]] = {
            "insight": _windows(settings.rate_limit_insight_per_minute, settings.rate_limit_insight_per_hour),
            "element": _windows(settings.rate_limit_element_per_minute, settings.rate_limit_element_per_hour),
        }
        self.windows["default"] = _windows(settings.rate_limit_default_per_minute,
                                           settings.rate_limit_default_per_hour)
        self.redis = redis or aioredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
        self.script = self.redis.register_script(_SCRIPT)

    async def hit(self, throttle_class: str, *, environment_id: int, key_id: str) -> None:
        """Count one request, or raise 429 `throttled` with `Retry-After` (one Redis round trip)."""
        if not self.enabled:
            return
        windows = self.windows[throttle_class]
        # Real time, not the app clock: a frozen clock must not freeze the windows.
        now = time.time()
        keys: list[str] = []
        args: list[float | int] = [now]
        for length, limit in windows:
            bucket = math.floor(now / length)
            base = f"{KEY_PREFIX}:{throttle_class}:{environment_id}:{key_id}:{length}"
            keys += [f"{base}:{bucket - 1}", f"{base}:{bucket}"]
            args += [length, limit]
        try:
            wait = int(await self.script(keys=keys, args=args))
        except RedisError as exc:  # storage errors: fail open, but say so
            log.warning("rate limiter unavailable: %s", exc)
            return
        if wait > 0:
            raise Throttled(f"Request was throttled. Expected available in {wait} seconds.",
                            headers={"Retry-After": str(wait)})

    async def reset(self) -> None:
        try:
            keys = [k async for k in self.redis.scan_iter(match=f"{KEY_PREFIX}:*", count=1000)]
            if keys:
                await self.redis.delete(*keys)
        except RedisError as exc:
            log.warning("rate limiter reset failed: %s", exc)

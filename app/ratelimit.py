"""Per-key, per-environment rate limits in Redis (spec/API.md §1.9), on the `limits` library.

Insight routes: 240/minute and 1200/hour; element routes: 480/minute and 4800/hour (settings
change the numbers, `APP_RATE_LIMITS=off` disables them). When Redis is unavailable requests
are let through: throttling protects the service, it must not take it down.
"""

from __future__ import annotations

import logging
import math

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from app import clock
from app.errors import Throttled
from app.settings import Settings

log = logging.getLogger(__name__)


def limits_uri(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class RateLimiter:
    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.enabled = settings.rate_limits == "on"
        self.items = {
            "insight": (
                RateLimitItemPerMinute(settings.rate_limit_insight_per_minute),
                RateLimitItemPerHour(settings.rate_limit_insight_per_hour),
            ),
            "element": (
                RateLimitItemPerMinute(settings.rate_limit_element_per_minute),
                RateLimitItemPerHour(settings.rate_limit_element_per_hour),
            ),
        }
        self.storage = RedisStorage(limits_uri(redis_url), implementation="redispy", key_prefix="tally_rl",
                                    wrap_exceptions=True)
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)

    async def hit(self, throttle_class: str, *, environment_id: int, key_id: str) -> None:
        if not self.enabled:
            return
        identifiers = (throttle_class, str(environment_id), key_id)
        try:
            for item in self.items[throttle_class]:
                if not await self.limiter.hit(item, *identifiers):
                    stats = await self.limiter.get_window_stats(item, *identifiers)
                    wait = max(1, min(item.get_expiry(), math.ceil(stats.reset_time - clock.now().timestamp())))
                    raise Throttled(
                        f"Request was throttled. Expected available in {wait} seconds.",
                        headers={"Retry-After": str(wait)},
                    )
        except Throttled:
            raise
        except Exception as exc:  # storage errors: fail open, but say so
            log.warning("rate limiter unavailable: %s", exc)

    async def reset(self) -> None:
        try:
            await self.storage.reset()
        except Exception as exc:
            log.warning("rate limiter reset failed: %s", exc)

"""Capture rate limit per project token (settings `capture_rate_limit_*`, off by default).

A fixed window counter in Redis (the `limits` library), so every API process shares it; each
request costs one Redis call and counts its events, not itself. Over the limit, "reject" answers
429 with Retry-After (posthog-python and posthog-js retry later, nothing is lost) and "drop" answers
200 and discards the events (what PostHog does for a project over its billing quota).
When Redis is unavailable, events are let through: the limit protects the service, it must not
take capture down.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from app.errors import AppError
from app.ingestion import metrics
from app.ratelimit import limits_uri

log = logging.getLogger("app.ingestion")


class CaptureRateLimited(AppError):
    status_code = 429
    # INGESTION.md §6 allows three error types; the client-side one fits a request that must wait.
    type = "validation_error"
    code = "rate_limited"
    default_detail = "Too many events for this project API key; retry later."


class CaptureLimiter:
    def __init__(self, redis_url: str, *, events_per_second: int, window_seconds: int = 10,
                 mode: str = "reject") -> None:
        self.enabled = events_per_second > 0
        self.drop = mode == "drop"
        self.item = RateLimitItemPerSecond(max(1, events_per_second * window_seconds), window_seconds)
        self.storage = RedisStorage(limits_uri(redis_url), implementation="redispy", key_prefix="tally_capture_rl",
                                    wrap_exceptions=True) if self.enabled else None
        self.limiter = FixedWindowRateLimiter(self.storage) if self.storage is not None else None

    @classmethod
    def from_settings(cls, settings: object, redis_url: str) -> CaptureLimiter:
        return cls(redis_url, events_per_second=settings.capture_rate_limit_events_per_second,  # type: ignore[attr-defined]
                   window_seconds=settings.capture_rate_limit_window_seconds,  # type: ignore[attr-defined]
                   mode=settings.capture_rate_limit_mode)  # type: ignore[attr-defined]

    async def admit(self, token: str, events: int) -> bool:
        """True: store the events. False: drop them and answer 200. Raises CaptureRateLimited (429)."""
        if self.limiter is None or events <= 0:
            return True
        try:
            if await self.limiter.hit(self.item, token, cost=events):
                return True
            stats = await self.limiter.get_window_stats(self.item, token)
        except Exception as exc:  # storage errors: fail open, but say so
            log.warning("capture rate limiter unavailable: %s", exc)
            return True
        metrics.incr("capture_events_rate_limited_total", amount=events)
        if self.drop:
            return False
        wait = max(1, min(self.item.get_expiry(), math.ceil(stats.reset_time - time.time())))
        raise CaptureRateLimited(headers={"Retry-After": str(wait)})

    async def reset(self) -> None:
        if self.storage is not None:
            await self.storage.reset()

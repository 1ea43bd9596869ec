"""Capture rate limit per project (settings `capture_rate_limit_*`), counted in events, in Redis."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.ingestion import metrics
from app.ingestion.ratelimit import CaptureLimiter
from app.main import create_app
from tests.ingestion.helpers import count, event


async def _app(settings, backends, **limits):
    update = {"inprocess_worker": False, "capture_rate_limit_window_seconds": 60, **limits}
    return create_app(settings.model_copy(update=update), backends=backends)


@pytest.fixture
async def limited(settings, backends):
    # 10 events/s over a 60 s window: 600 events per window.
    application = await _app(settings, backends, capture_rate_limit_events_per_second=10)
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
            yield c


@pytest.fixture
async def dropping(settings, backends):
    application = await _app(settings, backends, capture_rate_limit_events_per_second=10,
                             capture_rate_limit_mode="drop")
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
            yield c


def _batch(env, n, prefix):
    return {"api_key": env.creds.project_api_key, "batch": [event("e", f"{prefix}-{i}") for i in range(n)]}


async def test_over_the_limit_answers_429_and_stores_nothing(limited, env, other_env, backends):
    r = await limited.post("/batch/", json=_batch(env, 400, "a"))
    assert r.status_code == 200
    r = await limited.post("/batch/", json=_batch(env, 200, "b"))
    assert r.status_code == 200  # exactly 600: still within the window's budget
    before = metrics.get("capture_requests_rejected_total", "rate_limited")
    one = event("e", "c", properties={"token": env.creds.project_api_key})
    r = await limited.post("/e/", json=[one], headers={"Origin": "https://site.example"})
    assert r.status_code == 429
    assert r.json() == {"type": "validation_error", "code": "rate_limited", "attr": None,
                        "detail": "Too many events for this project API key; retry later."}
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["access-control-allow-origin"] == "https://site.example"
    assert metrics.get("capture_requests_rejected_total", "rate_limited") == before + 1
    assert await count(backends.clickhouse, env.id) == 600
    # The limit is per project: another environment is unaffected.
    r = await limited.post("/batch/", json=_batch(other_env, 5, "o"))
    assert r.status_code == 200


async def test_v1_over_the_limit_is_429(limited, env):
    assert (await limited.post("/batch/", json=_batch(env, 600, "x"))).status_code == 200
    body = {"batch": [{"event": "e", "distinct_id": "v1", "uuid": str(uuid.uuid4()),
                       "timestamp": "2026-11-26T10:00:00Z", "properties": {}}]}
    headers = {"Authorization": f"Bearer {env.creds.project_api_key}", "Content-Type": "application/json",
               "User-Agent": "test", "PostHog-SDK-Info": "posthog-python/8.0.0", "PostHog-Attempt": "1",
               "PostHog-Request-Id": str(uuid.uuid4()), "PostHog-Request-Timestamp": "2026-11-26T10:00:00Z"}
    r = await limited.post("/i/v1/analytics/events", json=body, headers=headers)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"


async def test_drop_mode_answers_200_and_discards(dropping, env, backends):
    assert (await dropping.post("/batch/", json=_batch(env, 600, "k"))).status_code == 200
    r = await dropping.post("/batch/", json=_batch(env, 10, "d"))
    assert r.status_code == 200 and r.json() == {"status": 1}
    assert await count(backends.clickhouse, env.id) == 600


async def test_default_is_off(client, env, backends):
    r = await client.post("/batch/", json=_batch(env, 2000, "n"))
    assert r.status_code == 200
    assert await count(backends.clickhouse, env.id) == 2000


async def test_redis_unavailable_lets_events_through():
    limiter = CaptureLimiter("unix:///nonexistent/redis.sock", events_per_second=1, window_seconds=1)
    assert await limiter.admit("1", 100) is True

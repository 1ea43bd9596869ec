"""Per-key rate limits on every keyed route (spec/API.md §1.9, issue 9 §4), with low limits so a
few requests reach them. Each test has its own key, so its buckets are its own."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.main import create_app
from tests.conftest import TestEnv

LIMIT = 2


@pytest.fixture(scope="module")
async def limited_app(settings, backends):
    s = settings.model_copy(update={
        "rate_limits": "on",
        "rate_limit_insight_per_minute": LIMIT, "rate_limit_element_per_minute": LIMIT,
        "rate_limit_default_per_minute": LIMIT,
    })
    application = create_app(s, backends=backends)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def lclient(limited_app):
    # The minute window is a sliding-window estimate: across a minute boundary the previous minute's
    # count is weighted just under 1, so LIMIT requests then one more could pass. Tests that count to
    # the limit start well inside a minute (they take well under a second on an idle machine).
    second = time.time() % 60
    if second > 50:
        await asyncio.sleep(60.5 - second)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited_app), base_url="http://testserver") as c:
        yield c


ROUTES = [
    ("GET", "/api/environments/"),
    ("GET", "/api/environments/{env}/"),
    ("GET", "/api/environments/{env}/property_definitions/"),
    ("GET", "/api/environments/{env}/event_definitions/"),
    ("GET", "/api/environments/{env}/dashboards/"),
    ("GET", "/api/environments/{env}/dashboards/999999999/"),
    ("GET", "/api/environments/{env}/query/nope/"),
    ("DELETE", "/api/environments/{env}/query/nope/"),
    ("GET", "/api/environments/{env}/insights/"),
    ("GET", "/api/environments/{env}/insights/activity/"),
    ("GET", "/api/environments/{env}/elements/"),
]


class TestEveryRouteIsThrottled:
    @pytest.mark.parametrize("method, path", ROUTES)
    async def test_429_after_the_limit(self, lclient, env: TestEnv, method, path):
        url = path.format(env=env.id)
        first = [(await lclient.request(method, url, headers=env.headers)).status_code for _ in range(LIMIT)]
        assert 429 not in first and all(code < 500 for code in first)
        r = await lclient.request(method, url, headers=env.headers)
        assert r.status_code == 429
        assert r.json() == {"type": "throttled_error", "code": "throttled", "attr": None,
                            "detail": r.json()["detail"]}
        assert r.json()["detail"].startswith("Request was throttled.")
        assert 1 <= int(r.headers["retry-after"]) <= 60

    async def test_classes_have_separate_buckets(self, lclient, env: TestEnv):
        for _ in range(LIMIT):
            await lclient.get(f"/api/environments/{env.id}/dashboards/", headers=env.headers)
        assert (await lclient.get(f"/api/environments/{env.id}/dashboards/", headers=env.headers)).status_code == 429
        # Insight routes have their own (ClickHouse) budget.
        assert (await lclient.get(f"/api/environments/{env.id}/insights/", headers=env.headers)).status_code == 200

    async def test_throttled_csv_request_gets_a_csv_error(self, lclient, env: TestEnv):
        url = f"/api/environments/{env.id}/insights/?format=csv"
        for _ in range(LIMIT):
            await lclient.get(url, headers=env.headers)
        r = await lclient.get(url, headers=env.headers)
        assert r.status_code == 429 and r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.text.startswith("attr,code,detail,type\r\n,throttled,") and int(r.headers["retry-after"]) >= 1

    async def test_unauthenticated_requests_are_not_counted(self, lclient, env: TestEnv):
        url = f"/api/environments/{env.id}/dashboards/"
        for _ in range(LIMIT + 2):
            assert (await lclient.get(url)).status_code == 403
        assert (await lclient.get(url, headers=env.headers)).status_code == 200


class TestWindows:
    async def test_hour_window_and_one_round_trip(self, settings, backends, env: TestEnv, monkeypatch):
        """Both windows are decided in one Redis round trip; a request refused by the hour window
        is not counted in the minute window either."""
        s = settings.model_copy(update={"rate_limits": "on", "rate_limit_default_per_minute": 100,
                                        "rate_limit_default_per_hour": 2})
        application = create_app(s, backends=backends)
        url = f"/api/environments/{env.id}/dashboards/"
        async with application.router.lifespan_context(application):
            limiter = application.state.rate_limiter
            calls: list[str] = []
            original = limiter.redis.execute_command

            async def counting(*args, **kwargs):
                calls.append(str(args[0]))
                return await original(*args, **kwargs)

            # The limiter shares the app's Redis client: patch it for this test only.
            monkeypatch.setattr(limiter.redis, "execute_command", counting)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
                codes = [(await c.get(url, headers=env.headers)).status_code for _ in range(3)]
                r = await c.get(url, headers=env.headers)
            assert codes == [200, 200, 429]
            assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 3600
            assert len(calls) == 4 and all(call in ("EVALSHA", "EVAL") for call in calls)
            keys = [k async for k in limiter.redis.scan_iter(match=f"tally_rl:default:{env.id}:*:60:*")]
            assert [int(await limiter.redis.get(k)) for k in keys] == [2]

    async def test_redis_unavailable_lets_requests_through(self, settings, backends, env: TestEnv, monkeypatch):
        from redis.exceptions import ConnectionError as RedisConnectionError

        s = settings.model_copy(update={"rate_limits": "on", "rate_limit_default_per_minute": 1})
        application = create_app(s, backends=backends)
        url = f"/api/environments/{env.id}/dashboards/"
        async with application.router.lifespan_context(application):
            async def down(*args, **kwargs):
                raise RedisConnectionError("down")

            monkeypatch.setattr(application.state.rate_limiter.redis, "execute_command", down)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
                assert [(await c.get(url, headers=env.headers)).status_code for _ in range(3)] == [200] * 3

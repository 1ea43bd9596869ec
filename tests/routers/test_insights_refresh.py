"""Refresh modes, the shared cache, background calculations on the real arq worker, polling, cancel
and coalescing (spec/API.md §3.3, §3.4, §3.13, §4), with a frozen clock."""

from __future__ import annotations

import asyncio

import pytest

from app import clock
from app.services import insight_cache as cache
from app.services.query_runner import executions_key
from tests.conftest import TestEnv
from tests.routers.insight_helpers import create_insight
from tests.query_engine.helpers import insert_events

TRENDS = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
          "dateRange": {"date_from": "-3d"}}
VIZ = {"kind": "InsightVizNode", "source": TRENDS}
T0 = "2020-01-12T12:00:00Z"


@pytest.fixture
async def frozen(backends, env):
    clock.freeze(T0)
    await insert_events(backends.clickhouse, env.id, [
        {"event": "$pageview", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z"},
        {"event": "$pageview", "distinct_id": "b", "timestamp": "2020-01-12T11:00:00Z"}])
    yield
    clock.freeze(None)


async def make(client, env: TestEnv, query=VIZ, **extra) -> dict:
    return await create_insight(client, env, query, **extra)


async def get(client, env: TestEnv, insight: dict, refresh: str | None = None, headers=None, extra: str = "") -> dict:
    qs = f"?refresh={refresh}" if refresh is not None else "?"
    r = await client.get(f"/api/environments/{env.id}/insights/{insight['id']}/{qs}{extra}",
                         headers=headers or env.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def executions(backends, env) -> int:
    return int(await backends.redis.get(executions_key(env.id)) or 0)


async def poll(client, env, query_id: str) -> tuple[int, dict]:
    for _ in range(400):
        r = await client.get(f"/api/environments/{env.id}/query/{query_id}/", headers=env.headers)
        if r.status_code != 202:
            return r.status_code, r.json()
        await asyncio.sleep(0.025)
    raise AssertionError("background calculation never completed")


def assert_no_result(body: dict) -> None:
    for name in ("result", "hasMore", "columns", "hogql", "types", "resolved_date_range", "last_refresh",
                 "cache_target_age", "next_allowed_client_refresh"):
        assert body[name] is None, name
    assert body["is_cached"] is False


class TestForceCache:
    async def test_miss(self, client, env, frozen):
        body = await get(client, env, await make(client, env))
        assert_no_result(body)
        assert body["filters_hash"].startswith(f"cache_{env.id}_") and body["query_status"] is None
        assert body["timezone"] is None  # no refresh requested and no stored result

    async def test_fresh_hit_shared_with_query_endpoint(self, client, env, backends, frozen):
        r = await client.post(f"/api/environments/{env.id}/query/", json={"query": VIZ}, headers=env.headers)
        assert r.status_code == 200 and r.json()["is_cached"] is False
        insight = await make(client, env)  # computing through one consumer makes it a hit for the other
        assert insight["is_cached"] is True and insight["result"][0]["data"] == [0, 0, 1, 1]
        assert insight["filters_hash"] == r.json()["cache_key"] and insight["last_refresh"] == T0
        assert insight["cache_target_age"] == "2020-01-12T18:00:00Z"
        assert insight["next_allowed_client_refresh"] == "2020-01-12T12:03:00Z"
        body = await get(client, env, insight, "force_cache")
        assert body["timezone"] == "UTC" and body["is_cached"] is True
        assert await executions(backends, env) == 1

    async def test_stale_hit(self, client, env, backends, frozen):
        insight = await make(client, env)
        await get(client, env, insight, "blocking")
        clock.freeze("2020-01-12T19:00:00Z")
        body = await get(client, env, insight)
        assert body["is_cached"] is True and body["last_refresh"] == T0
        assert await executions(backends, env) == 1


class TestBlocking:
    async def test_miss_computes(self, client, env, backends, frozen):
        body = await get(client, env, await make(client, env), "blocking")
        assert body["is_cached"] is False and body["last_refresh"] == T0 and body["query_status"] is None
        assert body["result"][0]["count"] == 2 and "SELECT" in body["hogql"]

    async def test_fresh_hit(self, client, env, backends, frozen):
        insight = await make(client, env)
        await get(client, env, insight, "blocking")
        clock.freeze("2020-01-12T12:30:00Z")
        body = await get(client, env, insight, "blocking")
        assert body["is_cached"] is True and await executions(backends, env) == 1

    async def test_stale_hit_recomputes(self, client, env, backends, frozen):
        insight = await make(client, env)
        await get(client, env, insight, "blocking")
        clock.freeze("2020-01-12T18:00:01Z")
        body = await get(client, env, insight, "blocking")
        assert body["is_cached"] is False and body["last_refresh"] == "2020-01-12T18:00:01Z"
        assert await executions(backends, env) == 2

    async def test_past_range_is_never_stale(self, client, env, backends, frozen):
        past = {"kind": "InsightVizNode", "source": {**TRENDS, "dateRange": {"date_from": "2020-01-01",
                                                                             "date_to": "2020-01-05"}}}
        insight = await make(client, env, past)
        await get(client, env, insight, "blocking")
        clock.freeze("2020-02-12T12:00:00Z")
        assert (await get(client, env, insight, "blocking"))["is_cached"] is True


class TestForceBlocking:
    async def test_always_computes(self, client, env, backends, frozen):
        insight = await make(client, env)
        for refresh in ("force_blocking", "true", ""):
            assert (await get(client, env, insight, refresh))["is_cached"] is False
        assert await executions(backends, env) == 3


class TestCacheKey:
    async def test_custom_name_patched_and_key_stable(self, client, env, backends, frozen):
        insight = await make(client, env)
        first = await get(client, env, insight, "blocking")
        named = {"kind": "InsightVizNode", "source": {**TRENDS, "series": [{**TRENDS["series"][0], "custom_name": "Views"}]}}
        r = await client.patch(f"/api/environments/{env.id}/insights/{insight['id']}/", json={"query": named},
                               headers=env.headers)
        body = r.json()
        assert body["filters_hash"] == first["filters_hash"] and body["is_cached"] is True
        assert body["result"][0]["action"]["custom_name"] == "Views"

    async def test_timezone_changes_key(self, client, env, frozen):
        from sqlalchemy import update

        from app.models import Environment

        insight = await make(client, env)
        async with env.backends.sessionmaker() as session:
            await session.execute(update(Environment).where(Environment.id == env.id).values(timezone="Europe/Paris"))
            await session.commit()
        assert (await get(client, env, insight))["filters_hash"] != insight["filters_hash"]


class TestAsync:
    async def test_miss_then_poll_then_cached(self, client, env, backends, frozen):
        insight = await make(client, env)
        body = await get(client, env, insight, "async")
        assert_no_result(body)
        status = body["query_status"]
        assert status["id"] == body["filters_hash"] and status["query_async"] is True and status["team_id"] == env.id
        assert status["insight_id"] == insight["id"]
        code, polled = await poll(client, env, status["id"])
        assert code == 200 and polled["query_status"]["complete"] is True and polled["query_status"]["error"] is False
        assert polled["query_status"]["results"]["results"][0]["count"] == 2
        assert polled["query_status"]["pickup_time"] is not None and polled["query_status"]["end_time"] is not None
        cached = await get(client, env, insight)
        assert cached["is_cached"] is True and cached["result"][0]["count"] == 2

    async def test_stale_hit_returns_result_and_starts(self, client, env, backends, frozen):
        insight = await make(client, env)
        await get(client, env, insight, "blocking")
        clock.freeze("2020-01-12T19:00:00Z")
        body = await get(client, env, insight, "async")
        assert body["is_cached"] is True and body["last_refresh"] == T0 and body["query_status"]["complete"] is False
        code, _ = await poll(client, env, body["query_status"]["id"])
        assert code == 200 and (await get(client, env, insight))["last_refresh"] == "2020-01-12T19:00:00Z"

    async def test_async_except_on_cache_miss_computes(self, client, env, frozen):
        body = await get(client, env, await make(client, env), "async_except_on_cache_miss")
        assert body["is_cached"] is False and body["result"] is not None

    async def test_lazy_async_uses_lazy_thresholds(self, client, env, backends, frozen):
        insight = await make(client, env)
        await get(client, env, insight, "blocking")
        clock.freeze("2020-01-12T19:00:00Z")  # stale by default (6 h), fresh by lazy (12 h) thresholds
        body = await get(client, env, insight, "lazy_async")
        assert body["is_cached"] is True and body["query_status"] is None

    async def test_force_async(self, client, env, frozen):
        body = await get(client, env, await make(client, env), "force_async")
        assert_no_result(body)
        assert body["filters_hash"] is None and body["query_status"]["complete"] is False
        code, _ = await poll(client, env, body["query_status"]["id"])
        assert code == 200

    async def test_no_duplicate_jobs_for_one_key(self, client, env, backends, frozen):
        insight = await make(client, env)
        bodies = await asyncio.gather(*[get(client, env, insight, "async") for _ in range(5)])
        assert len({b["query_status"]["task_id"] for b in bodies}) == 1
        await poll(client, env, bodies[0]["query_status"]["id"])
        assert await executions(backends, env) == 1


class TestQueryStatus:
    async def test_unknown_is_404(self, client, env):
        r = await client.get(f"/api/environments/{env.id}/query/cache_{env.id}_nope/", headers=env.headers)
        assert r.status_code == 404

    async def test_dead_worker_is_marked_failed(self, client, env, backends):
        # A status whose job stopped heartbeating (worker killed) must not stay "running".
        status = cache.new_status(environment_id=env.id, query_id="dead", insight_id=None, dashboard_id=None, token="t")
        await cache.save_status(backends.redis, status)
        r = await client.get(f"/api/environments/{env.id}/query/dead/", headers=env.headers)
        assert r.status_code == 400 and r.json()["query_status"]["error"] is True
        assert "stopped unexpectedly" in r.json()["query_status"]["error_message"]

    async def test_scope(self, client, env):
        key = await env.make_key(["insight:read"])
        r = await client.get(f"/api/environments/{env.id}/query/x/", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403


class TestCancel:
    async def test_requires_client_query_id(self, client, env):
        r = await client.post(f"/api/environments/{env.id}/insights/cancel/", json={}, headers=env.headers)
        assert r.status_code == 400 and r.json() == {"type": "validation_error", "code": "invalid_input",
                                                     "detail": "Field is required.", "attr": "client_query_id"}

    async def test_delete_unknown_query_id_is_404(self, client, env, other_env, backends):
        # Was 204 for any id, including another environment's cache key (tests/test_isolation.py).
        r = await client.delete(f"/api/environments/{env.id}/query/cache_{other_env.id}_abc/", headers=env.headers)
        assert r.status_code == 404 and r.json()["code"] == "not_found"

    async def test_unknown_id_is_201_empty(self, client, env):
        r = await client.post(f"/api/environments/{env.id}/insights/cancel/", json={"client_query_id": "nope"},
                              headers=env.headers)
        assert r.status_code == 201 and r.content == b""

    async def test_cancel_queued_calculation(self, client, env, backends, frozen):
        insight = await make(client, env)
        status = cache.new_status(environment_id=env.id, query_id=insight["filters_hash"], insight_id=None,
                                  dashboard_id=None, token="queued")
        await cache.save_status(backends.redis, status)
        await backends.redis.set(cache.alive_key(env.id, status["id"]), "queued", px=60_000)
        r = await client.delete(f"/api/environments/{env.id}/query/{status['id']}/", headers=env.headers)
        assert r.status_code == 204
        code, body = await poll(client, env, status["id"])
        assert code == 400 and body["query_status"]["error_message"] == "Query cancelled."


class TestCoalescing:
    async def test_fifty_identical_requests_run_once(self, client, env, other_env, backends, frozen):
        insight = await make(client, env)
        bodies = await asyncio.gather(*[get(client, env, insight, "force_blocking") for _ in range(50)])
        assert await executions(backends, env) == 1
        assert all(b == bodies[0] for b in bodies)
        assert bodies[0]["result"][0]["count"] == 2

    async def test_follower_without_access_is_refused(self, client, env, other_env, frozen):
        insight = await make(client, env)
        url = f"/api/environments/{env.id}/insights/{insight['id']}/?refresh=force_blocking"
        results = await asyncio.gather(
            *[client.get(url, headers=env.headers) for _ in range(5)],
            client.get(url, headers=other_env.headers))
        assert [r.status_code for r in results[:5]] == [200] * 5
        assert results[5].status_code == 403


class TestIdenticalRetrievesJoin:
    """Identical computing retrieves of one user join the one already computing in the process
    (app/services/insights_views.py `retrieve_view`); others do their own work."""

    @pytest.fixture
    def retrieves(self, monkeypatch) -> list[None]:
        """One entry per retrieve that did its own work."""
        from app.services import insights_views

        calls: list[None] = []
        original = insights_views._retrieve

        async def counted(*args, **kwargs):
            calls.append(None)
            return await original(*args, **kwargs)

        monkeypatch.setattr(insights_views, "_retrieve", counted)
        return calls

    async def test_followers_do_not_build_their_own_answer(self, client, env, backends, frozen, retrieves):
        insight = await make(client, env)
        bodies = await asyncio.gather(*[get(client, env, insight, "force_blocking") for _ in range(10)])
        assert len(retrieves) == 1 and await executions(backends, env) == 1
        assert all(b == bodies[0] for b in bodies)

    async def test_other_parameters_do_not_join_and_the_users_other_keys_do(self, client, env, frozen, retrieves):
        insight = await make(client, env)
        member = await env.make_key(["insight:read"])  # the same user: still joins
        await asyncio.gather(get(client, env, insight, "force_blocking"),
                             get(client, env, insight, "force_blocking", extra="&client_query_id=x"),
                             get(client, env, insight, "force_blocking", headers={"Authorization": f"Bearer {member}"}))
        assert len(retrieves) == 2  # the other query string answered on its own; the user's second key joined

    async def test_a_failed_leader_is_not_shared(self, client, env, frozen, monkeypatch):
        from app.services import insights_views

        insight = await make(client, env)
        original = insights_views._retrieve
        failed = []

        async def first_fails(*args, **kwargs):
            if not failed:
                failed.append(True)
                await asyncio.sleep(0.05)  # the others arrive and join meanwhile
                raise RuntimeError("boom")
            return await original(*args, **kwargs)

        monkeypatch.setattr(insights_views, "_retrieve", first_fails)
        url = f"/api/environments/{env.id}/insights/{insight['id']}/?refresh=force_blocking"
        results = await asyncio.gather(*[client.get(url, headers=env.headers) for _ in range(3)],
                                       return_exceptions=True)
        assert isinstance(results[0], RuntimeError) or results[0].status_code == 500
        assert [r.status_code for r in results[1:]] == [200, 200]


class TestConcurrencyLimit:
    async def test_limit_exceeded_status(self, client, env, backends, frozen):
        insight = await make(client, env)
        # Ten queries of this environment are already running (members expire far in the future).
        seconds, _ = await backends.redis.time()
        await backends.redis.zadd(f"query_running:{env.id}", {f"q{i}": (seconds + 600) * 1000 for i in range(10)})
        try:
            body = await get(client, env, insight, "force_blocking", extra="&client_query_id=mine")
        finally:
            await backends.redis.delete(f"query_running:{env.id}")
        assert body["result"] is None and body["last_refresh"] == T0 and body["filters_hash"] is None
        assert body["timezone"] == "UTC" and body["is_cached"] is False
        status = body["query_status"]
        assert status["error_message"] == "concurrency_limit_exceeded" and status["error"] is True
        assert status["id"] == "mine" and status["insight_id"] == str(insight["id"]) and status["complete"] is False

    async def test_query_endpoint_answers_429_with_retry_after(self, client, env, backends, frozen):
        seconds, _ = await backends.redis.time()
        await backends.redis.zadd(f"query_running:{env.id}", {f"q{i}": (seconds + 600) * 1000 for i in range(10)})
        try:
            r = await client.post(f"/api/environments/{env.id}/query/",
                                  json={"query": TRENDS, "refresh": "force_blocking"}, headers=env.headers)
        finally:
            await backends.redis.delete(f"query_running:{env.id}")
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        body = r.json()
        assert body["type"] == "throttled_error" and body["code"] == "throttled" and body["attr"] is None


class TestQueryEndpointRefresh:
    async def test_modes(self, client, env, frozen):
        url = f"/api/environments/{env.id}/query/"
        r = await client.post(url, json={"query": TRENDS, "refresh": "force_cache"}, headers=env.headers)
        assert r.status_code == 200 and r.json()["results"] is None and r.json()["is_cached"] is False
        r = await client.post(url, json={"query": TRENDS, "refresh": "async"}, headers=env.headers)
        status = r.json()["query_status"]
        assert status["complete"] is False and status["id"] == r.json()["cache_key"]
        code, _ = await poll(client, env, status["id"])
        assert code == 200
        r = await client.post(url, json={"query": TRENDS}, headers=env.headers)
        assert r.json()["is_cached"] is True and r.json()["results"][0]["count"] == 2


class TestListRefresh:
    async def test_every_item_resolved_with_the_mode(self, client, env, backends, frozen):
        a = await make(client, env)
        b = await make(client, env, {"kind": "InsightVizNode", "source": {**TRENDS, "interval": "hour"}})
        await make(client, env, None)  # no query: never a result, no key
        r = (await client.get(f"/api/environments/{env.id}/insights/?refresh=blocking", headers=env.headers)).json()
        by_id = {i["id"]: i for i in r["results"]}
        assert by_id[a["id"]]["is_cached"] is False and by_id[b["id"]]["result"] is not None
        assert by_id[b["id"]]["next_allowed_client_refresh"] == "2020-01-12T12:03:00Z"
        assert [i["filters_hash"] for i in r["results"]].count(None) == 1
        r = (await client.get(f"/api/environments/{env.id}/insights/", headers=env.headers)).json()
        assert sum(i["is_cached"] for i in r["results"]) == 2 and await executions(backends, env) == 2


class TestDashboardOverrides:
    async def test_tile_and_request_overrides_change_the_key(self, client, env, frozen):
        d = (await client.post(f"/api/environments/{env.id}/dashboards/", json={"name": "D", "filters": {
            "date_from": "-1d"}}, headers=env.headers)).json()
        insight = await make(client, env, dashboards=[d["id"]])
        base = await get(client, env, insight, extra=f"&from_dashboard={d['id']}")
        assert base["query"]["source"]["dateRange"]["date_from"] == "-1d"
        over = await get(client, env, insight, extra=f'&from_dashboard={d["id"]}&filters_override={{"date_from":"-2d"}}')
        assert over["query"]["source"]["dateRange"]["date_from"] == "-2d" and over["filters_hash"] != base["filters_hash"]
        tile = await get(client, env, insight, extra='&tile_filters_override={"interval":"hour"}')
        assert tile["query"]["source"]["interval"] == "hour" and tile["filters_hash"] != insight["filters_hash"]
        computed = await get(client, env, insight, "blocking", extra=f"&from_dashboard={d['id']}")
        assert computed["result"][0]["data"] == [1, 1] and computed["filters_hash"] == base["filters_hash"]


class TestLifetimes:
    async def test_cache_entry_7_days_status_20_minutes(self, client, env, backends, frozen):
        insight = await make(client, env)
        body = await get(client, env, insight, "async")
        await poll(client, env, body["query_status"]["id"])
        assert 7 * 86400 - 60 < await backends.redis.ttl(body["filters_hash"]) <= 7 * 86400
        assert 19 * 60 < await backends.redis.ttl(cache.status_key(env.id, body["filters_hash"])) <= 20 * 60

    async def test_unsupported_kind_does_not_fail_a_list(self, client, env, frozen):
        await make(client, env)
        await make(client, env, {"kind": "DataTableNode", "source": {"kind": "EventsQuery", "select": ["event"]}})
        r = await client.get(f"/api/environments/{env.id}/insights/?refresh=blocking", headers=env.headers)
        assert r.status_code == 200
        sql = [i for i in r.json()["results"] if i["query"]["kind"] == "DataTableNode"][0]
        assert sql["result"] is None and sql["query_status"]["error"] is True and sql["filters_hash"] is None

"""Faults injected into the real session backends (issue 9, item 3): ClickHouse query errors and
timeouts end in an error envelope or a finished `query_status` with `error`, never a status stuck
at "running". Process-level faults (Redis/PostgreSQL down, a killed worker) are in
tests/test_faults_live.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from app import clock
from tests.query_engine.helpers import insert_events

TRENDS = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
          "dateRange": {"date_from": "2020-01-10", "date_to": "2020-01-12"}}
# ClickHouse rejects the pattern while running the query (a real engine error, not one of our 400s).
BAD_REGEX = {**TRENDS, "properties": [{"key": "x", "operator": "regex", "value": "(unclosed"}]}
# Rolling MAU by minute over 4 000 people spreads ~170 M rows: far beyond a one-second limit
# (the same load as tests/routers/test_query.py::test_timeout_is_504).
SLOW = {**TRENDS, "series": [{"kind": "EventsNode", "event": "slow", "math": "monthly_active"}], "interval": "minute",
        "dateRange": {"date_from": "2020-01-06", "date_to": "2020-01-11T23:59:00", "explicitDate": True}}


@pytest.fixture
def frozen():
    clock.freeze("2020-01-12T12:00:00Z")
    yield
    clock.freeze(None)


@pytest.fixture
async def slow_env(env, backends, frozen):
    await backends.clickhouse.command(
        "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, person_id) "
        "SELECT generateUUIDv4(), 'slow', '{}', toDateTime64('2020-01-06 00:00:00', 6, 'UTC') + number * 20, "
        "{team:Int64}, toString(number), generateUUIDv4() FROM numbers(4000)", {"team": env.id})
    return env


@pytest.fixture
def one_second_limit(app):
    # The in-process worker reads the timeout from the session backends' settings, which is the
    # object the app holds: a model_copy on a second app would leave the async path at 60 s (and
    # the session app's worker may pick the job up), so the limit is lowered on the shared object.
    settings = app.state.settings
    assert settings is app.state.backends.settings
    old = settings.query_timeout_seconds
    settings.query_timeout_seconds = 1
    yield
    settings.query_timeout_seconds = old


async def post(client, env, body):
    return await client.post(f"/api/environments/{env.id}/query/", json=body, headers=env.headers)


async def finished_status(client, env, query_id: str, *, within: float = 20.0):
    """Poll the status until it is no longer 202; a status still running after `within` is the bug."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        r = await client.get(f"/api/environments/{env.id}/query/{query_id}/", headers=env.headers)
        if r.status_code != 202:
            return r
        await asyncio.sleep(0.05)
    raise AssertionError(f"query status still running after {within} s: {r.text}")


class TestClickHouseQueryError:
    async def test_blocking_is_400_envelope(self, client, env, backends, frozen):
        await insert_events(backends.clickhouse, env.id, [
            {"event": "$pageview", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "properties": {"x": "1"}}])
        r = await post(client, env, {"query": BAD_REGEX, "refresh": "blocking"})
        assert r.status_code == 400, r.text
        assert r.json()["type"] == "validation_error" and r.json()["code"] == "query_failed"

    async def test_async_refresh_ends_in_error_status(self, client, env, backends, frozen):
        await insert_events(backends.clickhouse, env.id, [
            {"event": "$pageview", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "properties": {"x": "1"}}])
        r = await post(client, env, {"query": BAD_REGEX, "refresh": "force_async"})
        assert r.status_code == 200, r.text
        query_id = r.json()["query_status"]["id"]
        done = await finished_status(client, env, query_id)
        assert done.status_code == 400, done.text
        status = done.json()["query_status"]
        assert status["complete"] is True and status["error"] is True and status["error_message"]


class TestClickHouseTimeout:
    async def test_blocking_query_is_504_envelope(self, client, slow_env, one_second_limit):
        started = time.monotonic()
        r = await post(client, slow_env, {"query": SLOW, "refresh": "force_blocking"})
        assert r.status_code == 504, r.text
        assert r.json()["code"] == "query_timeout" and "detail" in r.json()
        assert time.monotonic() - started < 15  # stopped by the limit, not by finishing

    async def test_blocking_insight_reports_error_in_query_status(self, client, slow_env, one_second_limit):
        env = slow_env
        insight = (await client.post(f"/api/environments/{env.id}/insights/",
                                     json={"name": "slow", "query": {"kind": "InsightVizNode", "source": SLOW}},
                                     headers=env.headers)).json()
        r = await client.get(f"/api/environments/{env.id}/insights/{insight['id']}/?refresh=force_blocking",
                             headers=env.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] is None
        assert body["query_status"]["error"] is True and "longer than 1 s" in body["query_status"]["error_message"]

    async def test_async_refresh_ends_in_error_status(self, client, slow_env, one_second_limit):
        env = slow_env
        r = await post(client, env, {"query": SLOW, "refresh": "force_async"})
        assert r.status_code == 200, r.text
        query_id = r.json()["query_status"]["id"]
        done = await finished_status(client, env, query_id)
        assert done.status_code in (400, 500), done.text
        status = done.json()["query_status"]
        assert status["complete"] is True and status["error"] is True
        # The cache holds no result for a timed-out calculation: the next read is still a miss.
        r = await post(client, env, {"query": SLOW, "refresh": "force_cache"})
        assert r.json()["results"] is None

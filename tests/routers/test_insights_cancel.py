"""Cancelling a long-running calculation (spec/API.md §3.4, §3.13): the ClickHouse query is killed
within a second, for background calculations (`DELETE query/{id}/`) and for a synchronous request
tagged with a client_query_id (`POST insights/cancel/`)."""

from __future__ import annotations

import asyncio
import time

import pytest
from arq.jobs import Job, JobStatus

from app import clock
from app.jobs.worker import QUEUE_NAME

EVENTS = 3_000_000
GENERATE = """
INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, person_id)
SELECT generateUUIDv4(), '$pageview', concat('{"k":"', toString(number % 1000), '"}'),
       toDateTime64('2020-04-10 12:00:00', 6, 'UTC') - toIntervalSecond(cityHash64(number) % (60 * 86400)),
       {team:Int64}, concat('u', toString(number % 200000)),
       reinterpretAsUUID(MD5(concat('u', toString(number % 200000))))
FROM numbers({n:UInt64})
"""
# Heavy on purpose: a rolling distinct count per day, broken down by a 1000-value property.
SLOW = {"kind": "InsightVizNode", "source": {
    "kind": "TrendsQuery", "dateRange": {"date_from": "-60d"},
    "series": [{"kind": "EventsNode", "event": "$pageview", "math": "monthly_active"}],
    "breakdownFilter": {"breakdown": "k", "breakdown_limit": 1000}}}


@pytest.fixture
async def slow_env(env, backends):
    clock.freeze("2020-04-10T12:00:00Z")
    await backends.clickhouse.command(GENERATE, {"n": EVENTS, "team": env.id})
    yield env
    clock.freeze(None)


async def running(client, env, query_id: str) -> bool:
    r = await client.get(f"/api/environments/{env.id}/query/{query_id}/", headers=env.headers)
    return r.status_code == 202 and r.json()["query_status"]["pickup_time"] is not None


class TestCancelRunning:
    async def test_delete_stops_background_query(self, client, slow_env, backends):
        env = slow_env
        r = await client.post(f"/api/environments/{env.id}/insights/?refresh=force_async",
                              json={"name": "slow", "query": SLOW}, headers=env.headers)
        query_id, task_id = r.json()["query_status"]["id"], r.json()["query_status"]["task_id"]
        for _ in range(200):
            if await running(client, env, query_id):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the ClickHouse query is under way
        started = time.perf_counter()
        r = await client.delete(f"/api/environments/{env.id}/query/{query_id}/", headers=env.headers)
        assert r.status_code == 204
        # The worker's job ends only when its ClickHouse query stops: it must be killed, not awaited.
        job = Job(task_id, backends.arq, _queue_name=QUEUE_NAME)
        while await job.status() != JobStatus.complete and time.perf_counter() - started < 1.0:
            await asyncio.sleep(0.02)
        assert await job.status() == JobStatus.complete, "the running ClickHouse query was not killed within 1 s"
        r = await client.get(f"/api/environments/{env.id}/query/{query_id}/", headers=env.headers)
        assert r.status_code == 400 and r.json()["query_status"]["error_message"] == "Query cancelled."

    async def test_cancel_endpoint_stops_synchronous_request(self, client, slow_env, backends):
        env = slow_env
        insight = (await client.post(f"/api/environments/{env.id}/insights/", json={"name": "slow", "query": SLOW},
                                     headers=env.headers)).json()
        request = asyncio.create_task(client.get(
            f"/api/environments/{env.id}/insights/{insight['id']}/?refresh=force_blocking&client_query_id=slow-1",
            headers=env.headers))
        await asyncio.sleep(0.5)  # the query needs seconds
        assert not request.done()
        started = time.perf_counter()
        r = await client.post(f"/api/environments/{env.id}/insights/cancel/", json={"client_query_id": "slow-1"},
                              headers=env.headers)
        assert r.status_code == 201
        response = await asyncio.wait_for(request, timeout=1.0)
        assert time.perf_counter() - started < 1.0
        assert response.status_code in (200, 400)
        assert response.json().get("result") is None

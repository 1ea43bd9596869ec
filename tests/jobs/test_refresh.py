"""The background refresh job on the real in-process arq worker: failures are recorded in the status."""

from __future__ import annotations

import asyncio

from tests.conftest import TestEnv

HOGQL = {"kind": "DataTableNode", "source": {"kind": "HogQLQuery", "query": "select nope()"}}  # a 400 in the job


async def poll(client, env: TestEnv, query_id: str):
    for _ in range(400):
        r = await client.get(f"/api/environments/{env.id}/query/{query_id}/?show_progress=true", headers=env.headers)
        if r.status_code != 202:
            return r
        await asyncio.sleep(0.025)
    raise AssertionError("never completed")


class TestRefreshJob:
    async def test_failing_job_is_recorded(self, client, env):
        r = await client.post(f"/api/environments/{env.id}/insights/?refresh=force_async",
                              json={"name": "sql", "query": HOGQL}, headers=env.headers)
        assert r.status_code == 201, r.text
        status = r.json()["query_status"]
        r = await poll(client, env, status["id"])
        assert r.status_code == 400
        body = r.json()["query_status"]
        assert body["complete"] is True and body["error"] is True and body["error_message"]
        assert "query_progress" in body and body["results"] is None

    async def test_job_for_other_generation_is_skipped(self, app, env):
        from app.jobs.refresh import refresh_query

        ctx = {"redis": app.state.redis, "clickhouse": app.state.clickhouse}
        assert await refresh_query(ctx, env.id, f"cache_{env.id}_none", {}, "stale-token") == "skipped"

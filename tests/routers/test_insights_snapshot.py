"""A cached retrieve is served from an in-process snapshot of its rows (no SQL), which every write
through this process drops at once and writes elsewhere drop through the Redis counter."""

from __future__ import annotations

from sqlalchemy import text

from app.services.insights_snapshot import VERSION_KEY
from tests.routers.insight_helpers import create_insight
from tests.sql_statements import sql_statements

QUERY = {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
                                              "dateRange": {"date_from": "2020-01-10", "date_to": "2020-01-12"}}}


def detail(env, insight, query: str = "") -> str:
    return f"/api/environments/{env.id}/insights/{insight['id']}/{query}"


class TestRetrieveSnapshot:
    async def test_repeated_retrieve_runs_no_sql(self, client, env, backends):
        insight = await create_insight(client, env, QUERY)
        first = await client.get(detail(env, insight), headers=env.headers)
        with sql_statements(backends) as seen:
            again = await client.get(detail(env, insight), headers=env.headers)
        assert seen == []
        assert again.json() == first.json()

    async def test_patch_through_the_api_is_seen_at_once(self, client, env):
        insight = await create_insight(client, env, QUERY)
        await client.get(detail(env, insight), headers=env.headers)
        r = await client.patch(detail(env, insight), json={"name": "Renamed", "tags": ["x"]}, headers=env.headers)
        assert r.status_code == 200
        body = (await client.get(detail(env, insight), headers=env.headers)).json()
        assert body["name"] == "Renamed" and body["tags"] == ["x"]
        await client.patch(detail(env, insight), json={"deleted": True}, headers=env.headers)
        assert (await client.get(detail(env, insight), headers=env.headers)).status_code == 404

    async def test_new_dashboard_tile_is_seen_at_once(self, client, env):
        insight = await create_insight(client, env, QUERY)
        await client.get(detail(env, insight), headers=env.headers)
        r = await client.post(f"/api/environments/{env.id}/dashboards/", json={"name": "D"}, headers=env.headers)
        dashboard = r.json()["id"]
        await client.patch(detail(env, insight), json={"dashboards": [dashboard]}, headers=env.headers)
        assert (await client.get(detail(env, insight), headers=env.headers)).json()["dashboards"] == [dashboard]

    async def test_write_in_another_process_is_seen_through_the_counter(self, client, env, backends):
        insight = await create_insight(client, env, QUERY)
        await client.get(detail(env, insight), headers=env.headers)
        async with backends.sessionmaker() as session:  # text(): invisible to this process' ORM events
            await session.execute(text("UPDATE insight SET name = 'Elsewhere' WHERE id = :i"), {"i": insight["id"]})
            await session.commit()
        assert (await client.get(detail(env, insight), headers=env.headers)).json()["name"] == "I"
        await backends.redis.incr(VERSION_KEY)  # what the other process does after its commit
        assert (await client.get(detail(env, insight), headers=env.headers)).json()["name"] == "Elsewhere"

    async def test_commit_bumps_the_counter(self, client, env, backends):
        import asyncio

        insight = await create_insight(client, env, QUERY)
        before = int(await backends.redis.get(VERSION_KEY) or 0)
        await client.patch(detail(env, insight), json={"name": "Bumped"}, headers=env.headers)
        for _ in range(50):  # the increment runs as a task right after the commit
            if int(await backends.redis.get(VERSION_KEY) or 0) > before:
                break
            await asyncio.sleep(0.01)
        assert int(await backends.redis.get(VERSION_KEY) or 0) > before

    async def test_short_id_parameter_is_part_of_the_lookup(self, client, env):
        insight = await create_insight(client, env, QUERY)
        assert (await client.get(detail(env, insight), headers=env.headers)).status_code == 200
        r = await client.get(detail(env, insight, "?short_id=nope"), headers=env.headers)
        assert r.status_code == 404
        r = await client.get(detail(env, insight, f"?short_id={insight['short_id']}"), headers=env.headers)
        assert r.status_code == 200

    async def test_other_environment_cannot_use_a_snapshot(self, client, env, other_env):
        insight = await create_insight(client, env, QUERY)
        assert (await client.get(detail(env, insight), headers=env.headers)).status_code == 200
        r = await client.get(f"/api/environments/{other_env.id}/insights/{insight['id']}/", headers=other_env.headers)
        assert r.status_code == 404
        r = await client.get(f"/api/environments/{env.id}/insights/{insight['id']}/", headers=other_env.headers)
        assert r.status_code == 403

    async def test_views_are_still_recorded(self, client, env):
        insight = await create_insight(client, env, QUERY)
        await client.get(detail(env, insight), headers=env.headers)
        listed = (await client.get(f"/api/environments/{env.id}/insights/", headers=env.headers)).json()
        assert listed["results"][0]["last_viewed_at"] is not None

    async def test_lookup_still_comes_before_validation(self, client, env):
        insight = await create_insight(client, env, QUERY)
        await client.get(detail(env, insight), headers=env.headers)
        r = await client.get(f"/api/environments/{env.id}/insights/999999999/?filters_override=nope", headers=env.headers)
        assert r.status_code == 404
        r = await client.get(detail(env, insight, "?filters_override=nope"), headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] == "filters_override"

    async def test_refresh_modes_bypass_the_unvalidated_path(self, client, env):
        insight = await create_insight(client, env, QUERY)
        await client.get(detail(env, insight), headers=env.headers)
        body = (await client.get(detail(env, insight, "?refresh=blocking"), headers=env.headers)).json()
        assert body["result"] is not None and body["name"] == "I"
        assert (await client.get(detail(env, insight), headers=env.headers)).json()["is_cached"] is True

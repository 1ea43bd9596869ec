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


class TestRenderedAgain:
    """A repeated cached retrieve sends the JSON it sent last time while nothing it depends on
    changed (app/services/insights_views.py, `_rendered_again`), after the caller's own checks."""

    async def _warm(self, client, env, insight, query: str = "") -> bytes:
        for _ in range(2):  # the first takes the snapshot, the second renders from it and remembers
            r = await client.get(detail(env, insight, query), headers=env.headers)
            assert r.status_code == 200
        return r.content

    async def test_same_bytes_and_a_view_recorded_on_a_lazily_opened_session(self, client, env, backends):
        from app.services import insights_views

        insight = await create_insight(client, env, QUERY)
        sent = await self._warm(client, env, insight)
        assert any(k[2] == str(insight["id"]) for k in insights_views._SENT)  # remembered
        async with backends.sessionmaker() as session:
            await session.execute(text("DELETE FROM insight_viewed WHERE insight_id = :i"), {"i": insight["id"]})
            await session.commit()
        insights_views._recent_views.clear()
        with sql_statements(backends) as seen:
            again = await client.get(detail(env, insight), headers=env.headers)
        assert again.content == sent
        assert len(seen) == 1 and "insight_viewed" in seen[0]  # only the view, no lookups
        async with backends.sessionmaker() as session:  # committed by the request's session
            count = await session.scalar(text("SELECT count(*) FROM insight_viewed WHERE insight_id = :i"),
                                         {"i": insight["id"]})
        assert count == 1
        with sql_statements(backends) as seen:  # throttled: no session at all
            assert (await client.get(detail(env, insight), headers=env.headers)).content == sent
        assert seen == []

    async def test_a_changed_cache_entry_is_seen_at_once(self, client, env, backends):
        import orjson

        insight = await create_insight(client, env, QUERY)
        await client.get(detail(env, insight, "?refresh=blocking"), headers=env.headers)
        sent = await self._warm(client, env, insight)
        key = orjson.loads(sent)["filters_hash"]
        entry = orjson.loads(await backends.redis.get(key))
        entry["last_refresh"] = "2019-01-01T00:00:00Z"  # what a computation in another process writes
        await backends.redis.set(key, orjson.dumps(entry))
        body = (await client.get(detail(env, insight), headers=env.headers)).json()
        assert body["last_refresh"] == "2019-01-01T00:00:00Z" and body["is_cached"] is True

    async def test_each_parameter_set_gets_what_the_full_path_builds(self, client, env):
        from app.services.insights_snapshot import SNAPSHOTS

        insight = await create_insight(client, env, QUERY)
        await client.get(detail(env, insight, "?refresh=blocking"), headers=env.headers)
        for query in ("", "?refresh=force_cache", "?format=json", "?refresh=false&from_dashboard=1"):
            remembered = await self._warm(client, env, insight, query)
            SNAPSHOTS.invalidate()  # the next one is built from the rows again
            built = await client.get(detail(env, insight, query), headers=env.headers)
            assert built.content == remembered, query
        await self._warm(client, env, insight)
        csv = await client.get(detail(env, insight, "?format=csv"), headers=env.headers)
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")

    async def test_write_in_another_process_is_seen_through_the_counter(self, client, env, backends):
        insight = await create_insight(client, env, QUERY)
        await self._warm(client, env, insight)
        async with backends.sessionmaker() as session:  # text(): invisible to this process' ORM events
            await session.execute(text("UPDATE insight SET name = 'Elsewhere' WHERE id = :i"), {"i": insight["id"]})
            await session.commit()
        await backends.redis.incr(VERSION_KEY)
        assert (await client.get(detail(env, insight), headers=env.headers)).json()["name"] == "Elsewhere"

    async def test_rule_added_elsewhere_denies_the_remembered_body(self, client, env, backends):
        from tests.routers.test_insights_access import People

        people = People(env, backends)
        insight = await create_insight(client, env, QUERY)
        member, member_id = await people.member()
        for _ in range(3):
            assert (await client.get(detail(env, insight), headers=member)).status_code == 200
        async with backends.sessionmaker() as session:  # as another process would, then its bump
            await session.execute(text(
                "INSERT INTO access_control (environment_id, resource, resource_id, access_level, created_at, "
                "organization_member_id) VALUES (:e, 'insight', :i, 'none', now(), :m)"),
                {"e": env.id, "i": str(insight["id"]), "m": member_id})
            await session.commit()
        await backends.redis.incr(VERSION_KEY)
        assert (await client.get(detail(env, insight), headers=member)).status_code == 403
        assert (await client.get(detail(env, insight), headers=env.headers)).status_code == 200


class TestConcurrentMisses:
    async def test_expired_caches_are_read_once_for_concurrent_requests(self, client, env, backends):
        import asyncio

        from app.auth import AUTH_CACHE
        from app.services.insights_snapshot import SNAPSHOTS

        insight = await create_insight(client, env, QUERY)
        first = await client.get(detail(env, insight), headers=env.headers)
        SNAPSHOTS.invalidate()
        AUTH_CACHE.invalidate()  # as when both expire under load
        with sql_statements(backends) as seen:
            responses = await asyncio.gather(*[client.get(detail(env, insight), headers=env.headers)
                                               for _ in range(10)])
        assert all(r.status_code == 200 for r in responses)
        assert {r.content for r in responses} == {first.content}
        selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
        assert sum("FROM personal_api_key" in s for s in selects) == 1
        assert sum(s.lstrip().startswith("SELECT insight.id") for s in selects) == 1

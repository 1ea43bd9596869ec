"""`POST /api/environments/{id}/query/` end to end: auth and scopes, the response shape, 400s that
name JSON paths, and engine errors mapped to 4xx/504."""

from __future__ import annotations

import pytest

from app import clock
from tests.conftest import TestEnv
from tests.query_engine.helpers import insert_events

TRENDS = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
          "dateRange": {"date_from": "2020-01-10", "date_to": "2020-01-12"}}


@pytest.fixture
def frozen():
    clock.freeze("2020-01-12T12:00:00Z")
    yield
    clock.freeze(None)


async def post(client, env: TestEnv, body, headers=None):
    return await client.post(f"/api/environments/{env.id}/query/", json=body, headers=headers or env.headers)


class TestRunQuery:
    async def test_trends(self, client, env, backends, frozen):
        await insert_events(backends.clickhouse, env.id, [
            {"event": "$pageview", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z"},
            {"event": "$pageview", "distinct_id": "b", "timestamp": "2020-01-11T11:00:00Z"},
        ])
        r = await post(client, env, {"query": TRENDS, "client_query_id": "my-query-1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["results"][0]["data"] == [0, 2, 0]
        assert body["is_cached"] is False and body["query_status"] is None
        assert body["resolved_date_range"] == {"date_from": "2020-01-10T00:00:00Z",
                                               "date_to": "2020-01-12T23:59:59.999999Z"}
        assert body["cache_key"].startswith(f"cache_{env.id}_")
        assert body["last_refresh"] == "2020-01-12T12:00:00Z"
        assert body["modifiers"]["personsOnEventsMode"] == "person_id_override_properties_on_events"
        assert "SELECT" in body["hogql"] and body["timings"]
        assert body["query_id"] == "my-query-1"

    async def test_insight_viz_node_and_unknown_keys(self, client, env, frozen):
        body = {"query": {"kind": "InsightVizNode", "source": {**TRENDS, "someNewKey": 1}, "full": True,
                          "vizSpecificOptions": {"x": 1}}, "refresh": "blocking"}
        r = await post(client, env, body)
        assert r.status_code == 200 and r.json()["results"][0]["count"] == 0

    async def test_database_connection_is_free_while_clickhouse_runs(self, client, env, app, backends, frozen,
                                                                       monkeypatch):
        """A blocking query holds no PostgreSQL connection while ClickHouse works (the pool is for
        requests that need it, not for requests waiting on a report)."""
        executor = app.state.clickhouse
        original = executor.execute
        held: list[int] = []

        async def observed(*args, **kwargs):
            held.append(backends.engine.pool.checkedout())
            return await original(*args, **kwargs)

        monkeypatch.setattr(executor, "execute", observed)
        r = await post(client, env, {"query": {**TRENDS, "properties": [
            {"type": "event", "key": "$browser", "operator": "exact", "value": "Chrome"}]}, "refresh": "force_blocking"})
        assert r.status_code == 200, r.text
        assert held and all(n == 0 for n in held), held

    async def test_other_teams_events_are_invisible(self, client, env, other_env, backends, frozen):
        await insert_events(backends.clickhouse, other_env.id, [
            {"event": "$pageview", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z"}])
        r = await post(client, env, {"query": TRENDS})
        assert r.json()["results"][0]["count"] == 0


class TestErrors:
    async def test_invalid_value_names_path(self, client, env):
        query = {**TRENDS, "series": [{"kind": "EventsNode", "math": "bogus"}]}
        r = await post(client, env, {"query": query})
        assert r.status_code == 400
        body = r.json()
        assert body["type"] == "validation_error" and body["attr"] == "query.series[0].math"

    async def test_unknown_kind(self, client, env):
        r = await post(client, env, {"query": {"kind": "Nope"}})
        assert r.status_code == 400 and r.json()["attr"] == "query"

    async def test_action_series_are_dropped(self, client, env, frozen):
        # §6: a missing action id matches nothing and its series is dropped; there are no actions,
        # so every ActionsNode is missing. A query of action series only has no rows.
        query = {**TRENDS, "series": [{"kind": "ActionsNode", "id": 1}]}
        r = await post(client, env, {"query": query})
        assert r.status_code == 200, r.text
        assert r.json()["results"] == []
        # The node shape is still validated: an ActionsNode needs an integer id.
        for bad in ({"kind": "ActionsNode"}, {"kind": "ActionsNode", "id": "x"}):
            r = await post(client, env, {"query": {**TRENDS, "series": [bad]}})
            assert r.status_code == 400 and r.json()["attr"].startswith("query.series[0]"), r.text

    async def test_hogql_math_and_breakdown(self, client, env, frozen):
        # Supported since issue 7 (tests/hogql/); an unknown function is a 400 naming the field.
        query = {**TRENDS, "series": [{"kind": "EventsNode", "math": "hogql", "math_hogql": "count()"}]}
        r = await post(client, env, {"query": query})
        assert r.status_code == 200, r.text
        query = {**TRENDS, "series": [{"kind": "EventsNode", "math": "hogql", "math_hogql": "nope()"}]}
        r = await post(client, env, {"query": query})
        assert r.status_code == 400 and r.json()["attr"] == "query.series[0].math_hogql"
        query = {**TRENDS, "breakdownFilter": {"breakdown_type": "hogql", "breakdown": "properties.x"}}
        r = await post(client, env, {"query": query})
        assert r.status_code == 200, r.text

    async def test_other_insight_kinds_are_400(self, client, env):
        query = {"kind": "FunnelsQuery", "series": [{"kind": "EventsNode", "event": "a"}]}
        r = await post(client, env, {"query": query})
        assert r.status_code == 400 and "FunnelsQuery queries are not supported yet" in r.json()["detail"]

    async def test_bad_regex_is_400_not_500(self, client, env, backends, frozen):
        await insert_events(backends.clickhouse, env.id, [
            {"event": "$pageview", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "properties": {"x": "1"}}])
        query = {**TRENDS, "properties": [{"key": "x", "operator": "regex", "value": "(unclosed"}]}
        r = await post(client, env, {"query": query})
        assert r.status_code == 400
        assert r.json()["code"] == "query_failed"

    async def test_bad_client_query_id(self, client, env):
        r = await post(client, env, {"query": TRENDS, "client_query_id": "a b*/"})
        assert r.status_code == 400 and r.json()["attr"] == "client_query_id"

    async def test_too_many_buckets_is_400(self, client, env, frozen):
        query = {**TRENDS, "interval": "minute", "dateRange": {"date_from": "2019-01-01", "date_to": "2020-01-01"}}
        r = await post(client, env, {"query": query})
        assert r.status_code == 400 and "intervals" in r.json()["detail"]

    async def test_timeout_is_504(self, client, env, app, backends, frozen):
        # Rolling MAU by minute spreads every (minute, person) pair over 43 200 ticks: 4 000 pairs are
        # ~170 M rows, beyond a one-second limit.
        await backends.clickhouse.command(
            "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, person_id) "
            "SELECT generateUUIDv4(), 'slow', '{}', toDateTime64('2020-01-06 00:00:00', 6, 'UTC') + number * 20, "
            "{team:Int64}, toString(number), generateUUIDv4() FROM numbers(4000)", {"team": env.id})
        settings = app.state.settings
        old = settings.query_timeout_seconds
        settings.query_timeout_seconds = 1
        try:
            query = {**TRENDS, "series": [{"kind": "EventsNode", "event": "slow", "math": "monthly_active"}],
                     "interval": "minute",
                     "dateRange": {"date_from": "2020-01-06", "date_to": "2020-01-11T23:59:00", "explicitDate": True}}
            r = await post(client, env, {"query": query})
            assert r.status_code == 504, r.text
            assert r.json()["code"] == "query_timeout"
        finally:
            settings.query_timeout_seconds = old


class TestAuth:
    async def test_needs_key(self, client, env):
        r = await client.post(f"/api/environments/{env.id}/query/", json={"query": TRENDS})
        assert r.status_code in (401, 403)

    async def test_needs_query_read_scope(self, client, env):
        key = await env.make_key(["insight:read"])
        r = await post(client, env, {"query": TRENDS}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403
        key = await env.make_key(["query:read"])
        r = await post(client, env, {"query": TRENDS}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200

    async def test_other_organization(self, client, env, other_env):
        r = await client.post(f"/api/environments/{other_env.id}/query/", json={"query": TRENDS},
                              headers=env.headers)
        assert r.status_code in (403, 404)

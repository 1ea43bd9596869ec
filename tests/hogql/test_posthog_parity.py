"""HogQLQuery answers compared with PostHog's published behaviour (posthog/hogql_queries/hogql_query_runner.py,
posthog/hogql_queries/insights/paginators.py, posthog/hogql/constants.py, posthog/hogql/printer.py,
posthog/hogql/resolver.py, posthog/renderers.py), over the two-environment dataset of conftest.py."""

from __future__ import annotations

from tests.hogql.conftest import hogql, post


async def _error(client, env, text: str) -> str:
    r = await post(client, env, {"kind": "HogQLQuery", "query": text})
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "validation_error"
    return r.json()["detail"]


class TestPagination:
    async def test_no_limit_paginates_100_with_has_more(self, client, data):
        body = await hogql(client, data, "SELECT arrayJoin(range(150)) AS x")
        assert len(body["results"]) == 100
        assert (body["hasMore"], body["limit"], body["offset"]) == (True, 100, 0)
        body = await hogql(client, data, "SELECT event FROM events")
        assert len(body["results"]) == 5
        assert (body["hasMore"], body["limit"], body["offset"]) == (False, 100, 0)

    async def test_user_limit_is_not_paginated(self, client, data):
        # The paginator only runs when the query has no LIMIT: hasMore/limit/offset stay null.
        body = await hogql(client, data, "SELECT event FROM events ORDER BY timestamp LIMIT 2")
        assert body["results"] == [["$pageview"], ["$pageview"]]
        assert (body["hasMore"], body["limit"], body["offset"]) == (None, None, None)

    async def test_user_limit_capped_at_50000(self, client, data):
        body = await hogql(client, data, "SELECT arrayJoin(range(60000)) AS x LIMIT 100000")
        assert len(body["results"]) == 50_000 and body["hasMore"] is None

    async def test_user_limit_offset(self, client, data):
        body = await hogql(client, data, "SELECT event FROM events ORDER BY timestamp LIMIT 2 OFFSET 3")
        assert body["results"] == [["signup"], ["purchase"]]

    async def test_union_each_branch_gets_default_limit(self, client, data):
        body = await hogql(client, data, "SELECT arrayJoin(range(150)) AS x UNION ALL SELECT arrayJoin(range(150)) AS x")
        assert len(body["results"]) == 200 and body["hasMore"] is None


class TestRendering:
    async def test_datetimes_are_iso_with_z(self, client, data):
        body = await hogql(client, data, "SELECT timestamp, toStartOfDay(timestamp), toDate(timestamp), now() "
                                         "FROM events ORDER BY timestamp LIMIT 1")
        assert body["results"] == [["2024-01-01T10:00:00Z", "2024-01-01T00:00:00Z", "2024-01-01",
                                    "2024-01-10T12:00:00Z"]]
        assert body["types"][0] == ["timestamp", "DateTime64(6, 'UTC')"]

    async def test_datetimes_in_project_timezone_carry_offset(self, client, data, backends):
        from sqlalchemy import update

        from app.models import Environment
        async with backends.sessionmaker() as session:
            await session.execute(update(Environment).where(Environment.id == data.id).values(timezone="Europe/Paris"))
            await session.commit()
        body = await hogql(client, data, "SELECT timestamp, toStartOfDay(timestamp) FROM events "
                                         "ORDER BY timestamp LIMIT 1")
        assert body["results"] == [["2024-01-01T11:00:00+01:00", "2024-01-01T00:00:00+01:00"]]

    async def test_datetime_arrays(self, client, data):
        body = await hogql(client, data, "SELECT [timestamp] FROM events ORDER BY timestamp LIMIT 1")
        assert body["results"] == [[["2024-01-01T10:00:00Z"]]]

    async def test_scalars(self, client, data):
        body = await hogql(client, data, "SELECT true, false, null, 1 = 1, 1.5, "
                                         "toUUID('00000000-0000-0000-0000-000000000001')")
        assert body["results"] == [[True, False, None, 1, 1.5, "00000000-0000-0000-0000-000000000001"]]


class TestLiterals:
    async def test_integer_literals_type_like_clickhouse(self, client, data):
        # PostHog prints numbers inline, so ClickHouse types them: 1 is UInt8, -1 Int8, 300 UInt16.
        body = await hogql(client, data, "SELECT 1, -1, 300, if(1, 'a', 'b'), multiIf(0, 'a', 1, 'b', 'c')")
        assert body["results"] == [[1, -1, 300, "a", "b"]]
        assert [t for _, t in body["types"][:3]] == ["UInt8", "Int8", "UInt16"]

    async def test_common_functions(self, client, data):
        body = await hogql(client, data, "SELECT countIf(event = '$pageview'), uniq(distinct_id), "
                                         "dateDiff('day', min(timestamp), max(timestamp)), count() FROM events")
        assert body["results"] == [[3, 3, 4, 5]]

    async def test_event_counts_order_by_count(self, client, data):
        body = await hogql(client, data, "SELECT event, count() FROM events GROUP BY event ORDER BY count() DESC, event")
        assert body["results"] == [["$pageview", 3], ["purchase", 1], ["signup", 1]]
        assert body["columns"] == ["event", "count()"]
        assert body["types"] == [["event", "String"], ["count()", "UInt64"]]


class TestErrors:
    async def test_unknown_field(self, client, data):
        assert (await _error(client, data, "SELECT foo FROM events")).startswith("Unable to resolve field: foo")

    async def test_unknown_table(self, client, data):
        assert (await _error(client, data, "SELECT 1 FROM nope")).startswith("Unknown table `nope`")

    async def test_unknown_function(self, client, data):
        assert (await _error(client, data, "SELECT nofunc(1)")).startswith("Unsupported function call 'nofunc(...)'")

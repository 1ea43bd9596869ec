"""HogQLQuery through `POST query/` over inserted events: expected numbers for counts, grouping,
joins to persons, subqueries, HAVING, ORDER/LIMIT, dates in the project timezone. Environment B's
rows exist in the same tables and must never be counted."""

from __future__ import annotations

import pytest

from tests.hogql.conftest import hogql, post

CASES = [
    ("SELECT count() FROM events", [[5]]),
    ("SELECT event, count() FROM events GROUP BY event ORDER BY event", [["$pageview", 3], ["purchase", 1], ["signup", 1]]),
    ("SELECT count(DISTINCT distinct_id) FROM events", [[3]]),
    ("SELECT uniq(distinct_id) FROM events", [[3]]),
    ("SELECT properties.$browser AS b, count() c FROM events WHERE event = '$pageview' GROUP BY b ORDER BY c DESC",
     [["Chrome", 2], ["Firefox", 1]]),
    ("SELECT properties['$browser'] FROM events WHERE event = 'purchase'", [["Safari"]]),
    ("SELECT properties.nested.a.b FROM events WHERE properties.nested.a.b IS NOT NULL", [["deep"]]),
    ("SELECT properties['nested']['a']['b'] FROM events WHERE isNotNull(properties.nested)", [["deep"]]),
    ("SELECT sum(toFloat(properties.price)) FROM events", [[142.5]]),
    ("SELECT avg(toFloat(properties.price)) + 1000 FROM events", [[1028.5]]),
    ("SELECT min(toFloat(properties.price)), max(toFloat(properties.price)) FROM events", [[5.0, 100.0]]),
    ("SELECT median(toFloat(properties.price)) FROM events", [[10.0]]),
    ("SELECT quantile(0.5)(toFloat(properties.price)) FROM events", [[10.0]]),
    ("SELECT countIf(event = '$pageview'), countIf(event != '$pageview') FROM events", [[3, 2]]),
    ("SELECT argMax(event, timestamp) FROM events", [["purchase"]]),
    ("SELECT distinct_id, count() AS c FROM events GROUP BY distinct_id HAVING c > 1 ORDER BY distinct_id",
     [["u1", 2], ["u2", 2]]),
    ("SELECT event FROM events ORDER BY timestamp DESC LIMIT 2", [["purchase"], ["signup"]]),
    ("SELECT distinct_id FROM events ORDER BY timestamp LIMIT 2 OFFSET 2", [["u2"], ["u2"]]),
    ("SELECT toString(toDate(timestamp)) AS d, count() FROM events GROUP BY d ORDER BY d",
     [["2024-01-01", 2], ["2024-01-02", 1], ["2024-01-03", 1], ["2024-01-05", 1]]),
    ("SELECT count() FROM events WHERE timestamp >= '2024-01-02' AND timestamp < '2024-01-04'", [[2]]),
    ("SELECT count() FROM events WHERE timestamp < toDateTime('2024-01-03 00:00:00')", [[3]]),
    ("SELECT dateDiff('day', min(timestamp), max(timestamp)) FROM events", [[4]]),
    ("SELECT p.properties.plan AS plan, count() FROM events e JOIN persons p ON p.id = e.person_id "
     "GROUP BY plan ORDER BY plan", [["free", 2], ["pro", 3]]),
    ("SELECT count() FROM persons", [[3]]),
    ("SELECT properties.email FROM persons ORDER BY properties.email", [["u1@x.io"], ["u2@x.io"], ["u3@y.io"]]),
    ("SELECT distinct_id FROM person_distinct_ids ORDER BY distinct_id", [["u1"], ["u2"], ["u3"]]),
    ("SELECT count() FROM (SELECT distinct_id FROM events GROUP BY distinct_id)", [[3]]),
    ("SELECT event FROM events WHERE distinct_id IN (SELECT distinct_id FROM events WHERE event = 'signup') "
     "ORDER BY timestamp", [["$pageview"], ["signup"]]),
    ("WITH buyers AS (SELECT distinct_id FROM events WHERE event = 'purchase') "
     "SELECT count() FROM events WHERE distinct_id IN (SELECT distinct_id FROM buyers)", [[1]]),
    ("SELECT x FROM (SELECT event AS x FROM events WHERE event = 'signup' UNION ALL "
     "SELECT event FROM events WHERE event = 'purchase') ORDER BY x", [["purchase"], ["signup"]]),
    ("SELECT person.properties.plan, count() FROM events GROUP BY 1 ORDER BY 1", [["free", 2], ["pro", 3]]),
    ("SELECT concat(person.properties.email, ' : ', properties.location) FROM events WHERE event = 'signup'",
     [["u2@x.io : Paris"]]),
    ("SELECT CASE WHEN toFloat(properties.price) >= 50 THEN 'big' ELSE 'small' END AS size, count() FROM events "
     "GROUP BY size ORDER BY size", [["big", 1], ["small", 4]]),
    ("SELECT if(event = 'signup', 1, 0) AS s, count() FROM events GROUP BY s ORDER BY s", [[0, 4], [1, 1]]),
    ("SELECT count() FROM events WHERE person.properties.email LIKE '%@x.io'", [[4]]),
    ("SELECT count() FROM events WHERE event IN ('signup', 'purchase')", [[2]]),
    ("SELECT count() FROM events WHERE event NOT IN ('signup', 'purchase')", [[3]]),
    ("SELECT count() FROM events WHERE toFloat(properties.price) BETWEEN 5 AND 10", [[3]]),
    ("SELECT lower(properties.$browser), length(event) FROM events WHERE event = 'purchase'", [["safari", 8]]),
    ("SELECT ifNull(properties.location, 'none') AS l, count() FROM events GROUP BY l ORDER BY l",
     [["Berlin", 1], ["Paris", 1], ["none", 3]]),
    ("SELECT toYear(timestamp), toMonth(timestamp) FROM events WHERE event = 'signup'", [[2024, 1]]),
    ("SELECT DISTINCT event FROM events ORDER BY event", [["$pageview"], ["purchase"], ["signup"]]),
    ("SELECT count() FROM events a JOIN events b ON a.distinct_id = b.distinct_id WHERE a.event = 'signup'", [[2]]),
    ("SELECT e.event FROM events e JOIN person_distinct_ids pdi ON pdi.distinct_id = e.distinct_id "
     "WHERE pdi.person_id = e.person_id AND e.event = 'purchase'", [["purchase"]]),
    ("SELECT e.distinct_id, p.properties.email FROM events e LEFT JOIN persons p ON p.id = e.person_id "
     "WHERE e.event = 'signup'", [["u2", "u2@x.io"]]),
    ("SELECT arrayJoin([1, 2]) AS x ORDER BY x", [[1], [2]]),
    ("SELECT event, row_number() OVER (PARTITION BY distinct_id ORDER BY timestamp) AS n FROM events "
     "WHERE distinct_id = 'u2' ORDER BY n", [["$pageview", 1], ["signup", 2]]),
    ("SELECT event, lagInFrame(event) OVER (ORDER BY timestamp) FROM events WHERE distinct_id = 'u2' "
     "ORDER BY timestamp", [["$pageview", ""], ["signup", "$pageview"]]),
    ("SELECT round(sum(toFloat(properties.price)) / count(), 1) FROM events", [[28.5]]),
    ("SELECT event FROM events WHERE event = 'signup' OR 1 = 1 ORDER BY timestamp LIMIT 1", [["$pageview"]]),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[f"q{i}" for i in range(len(CASES))])
async def test_sql_insight(client, data, text, expected):
    body = await hogql(client, data, text)
    assert body["results"] == expected, body.get("clickhouse")
    # PostHog paginates (hasMore) only queries without a LIMIT of their own.
    assert body["hasMore"] is (None if "LIMIT" in text else False) and body["hogql"] == text
    assert len(body["columns"]) == len(expected[0]) == len(body["types"])


async def test_project_timezone_moves_dates(client, data, backends):
    from sqlalchemy import update

    from app.models import Environment

    async with backends.sessionmaker() as session:
        await session.execute(update(Environment).where(Environment.id == data.id).values(timezone="Asia/Tokyo"))
        await session.commit()
    body = await hogql(client, data, "SELECT toString(toDate(timestamp)) AS d, count() FROM events GROUP BY d ORDER BY d")
    # 2024-01-02T23:30Z is 08:30 on the 3rd in Tokyo.
    assert body["results"] == [["2024-01-01", 2], ["2024-01-03", 2], ["2024-01-05", 1]]
    body = await hogql(client, data, "SELECT toHour(timestamp) FROM events WHERE event = 'signup'")
    assert body["results"] == [[17]]
    # Strings compared with timestamps are read in the project timezone too.
    body = await hogql(client, data, "SELECT count() FROM events WHERE timestamp >= '2024-01-03'")
    assert body["results"] == [[3]]


async def test_numeric_property_definition_compares_as_number(client, data, backends):
    from app.models.definitions import PropertyDefinition

    async with backends.sessionmaker() as session:
        session.add(PropertyDefinition(environment_id=data.id, name="price", type=1, group_type_index=-1,
                                       property_type="Numeric", is_numerical=True))
        await session.commit()
    body = await hogql(client, data, "SELECT count() FROM events WHERE properties.price > 8")
    assert body["results"] == [[3]]  # 10, 20, 100; "7.5" and 5 are below
    body = await hogql(client, data, "SELECT sum(properties.price) FROM events")
    assert body["results"] == [[142.5]]


async def test_columns_and_types(client, data):
    body = await hogql(client, data, "SELECT event AS name, count() FROM events GROUP BY name ORDER BY name LIMIT 1")
    assert body["columns"] == ["name", "count()"]
    assert body["types"] == [["name", "String"], ["count()", "UInt64"]]


async def test_default_limit_and_has_more(client, data):
    body = await hogql(client, data, "SELECT arrayJoin(range(150)) AS x")
    assert len(body["results"]) == 100 and body["hasMore"] is True
    body = await hogql(client, data, "SELECT event FROM events ORDER BY timestamp LIMIT 2")
    assert len(body["results"]) == 2 and body["hasMore"] is None
    body = await hogql(client, data, "SELECT event FROM events")
    assert len(body["results"]) == 5 and body["hasMore"] is False


async def test_max_rows(client, data):
    body = await hogql(client, data, "SELECT arrayJoin(range(60000)) AS x LIMIT 100000")
    assert len(body["results"]) == 50_000 and body["hasMore"] is None


async def test_sessions_and_groups(client, data, backends):
    from tests.query_engine.helpers import insert_events

    await insert_events(backends.clickhouse, data.id, [
        {"event": "$pageview", "distinct_id": "u9", "timestamp": t,
         "properties": {"$current_url": u, "$session_id": "sess-1"}}
        for u, t in (("https://a.io/1", "2024-01-06T10:00:00Z"), ("https://a.io/2", "2024-01-06T10:02:30Z"))])
    from tests.query_engine.helpers import insert_group

    await insert_group(backends.clickhouse, data.id, 0, "acme", {"industry": "tools"})
    body = await hogql(client, data, "SELECT session_id, duration, $entry_current_url, $pageview_count FROM sessions WHERE session_id = 'sess-1'")
    assert body["results"] == [["sess-1", 150, "https://a.io/1", 2]]
    body = await hogql(client, data, "SELECT key, properties.industry FROM groups WHERE index = 0")
    assert body["results"] == [["acme", "tools"]]


async def test_wrappers(client, data):
    text = "SELECT event, count() FROM events GROUP BY event ORDER BY event"
    for wrapper in ("DataTableNode", "DataVisualizationNode"):
        r = await post(client, data, {"kind": wrapper, "source": {"kind": "HogQLQuery", "query": text}})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0] == ["$pageview", 3]
    r = await post(client, data, {"kind": "DataTableNode", "source": {"kind": "HogQLQuery", "query": "SELECT nope()"}})
    assert r.status_code == 400 and r.json()["attr"] == "query.source.query"


async def test_saved_sql_insight(client, data):
    query = {"kind": "DataVisualizationNode", "source": {
        "kind": "HogQLQuery", "query": "SELECT event, count() AS c FROM events GROUP BY event ORDER BY c DESC, event"}}
    r = await client.post(f"/api/environments/{data.id}/insights/", json={"name": "sql", "query": query},
                          headers=data.headers)
    assert r.status_code == 201, r.text
    r = await client.get(f"/api/environments/{data.id}/insights/{r.json()['id']}/?refresh=blocking",
                         headers=data.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"] == [["$pageview", 3], ["purchase", 1], ["signup", 1]]
    assert body["columns"] == ["event", "c"] and body["types"][1] == ["c", "UInt64"]


async def test_readme_example(client, data):
    # The README's curl example. now() is the application clock, frozen in these tests.
    from app import clock

    text = ("SELECT properties.$browser AS browser, count() AS c FROM events WHERE timestamp > now() - INTERVAL 7 DAY "
            "GROUP BY browser ORDER BY c DESC LIMIT 10")
    pinned = clock.now().strftime("%Y-%m-%d %H:%M:%S")
    explicit = text.replace("now()", f"toDateTime('{pinned}')")  # the project timezone is UTC here
    assert (await hogql(client, data, text))["results"] == (await hogql(client, data, explicit))["results"]
    body = await hogql(client, data, text.replace("now() - INTERVAL 7 DAY", "toDateTime('2024-01-01') - INTERVAL 7 DAY"))
    assert body["results"][0] == ["Chrome", 2]


async def test_select_star(client, data):
    body = await hogql(client, data, "SELECT * FROM events WHERE event = 'purchase'")
    assert body["columns"] == ["uuid", "event", "properties", "timestamp", "distinct_id", "elements_chain",
                               "created_at", "$session_id", "person_id"]
    assert len(body["results"]) == 1 and body["results"][0][1] == "purchase" and body["results"][0][4] == "u3"
    body = await hogql(client, data, "SELECT p.* FROM persons p ORDER BY p.created_at, p.properties.email LIMIT 1")
    assert body["columns"] == ["id", "properties", "created_at", "is_identified"]


async def test_values_placeholders(client, data):
    query = {"kind": "HogQLQuery", "query": "SELECT count() FROM events WHERE event = {ev} OR distinct_id IN {ids}",
             "values": {"ev": "purchase", "ids": ["u1", "' OR 1=1 --"]}}
    r = await post(client, data, query)
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [[3]]
    r = await post(client, data, {**query, "values": {"ev": {"nested": 1}, "ids": ["u1"]}})
    assert r.status_code == 400 and "{ev}" in r.json()["detail"] and r.json()["attr"] == "query.query"
    r = await post(client, data, {**query, "values": {}})
    assert r.status_code == 400 and "No value for the placeholder" in r.json()["detail"]
    r = await post(client, data, {**query, "variables": {"a": {"code_name": "a"}}})  # unused: no effect
    assert r.status_code == 200 and r.json()["results"] == [[3]]


async def test_huge_values_are_refused(client, data):
    # One row can still be enormous; the answer's size is capped (max_result_bytes), a 400 not a crash.
    r = await post(client, data, {"kind": "HogQLQuery", "query": "SELECT range(50000000), range(2000000)"})
    assert r.status_code == 400 and r.json()["type"] == "validation_error", r.text[:300]

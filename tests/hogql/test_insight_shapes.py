"""Where HogQL appears inside insights: `math: "hogql"`, hogql breakdowns (single and `breakdowns[]`),
`type: "hogql"` property filters, all through `POST query/` on inserted events of two environments."""

from __future__ import annotations

from tests.hogql.conftest import post

RANGE = {"date_from": "2024-01-01", "date_to": "2024-01-05"}


def trends(series: dict, **fields) -> dict:
    return {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", **series}], "dateRange": RANGE,
            "interval": "day", **fields}


async def run(client, env, query: dict) -> list[dict]:
    r = await post(client, env, query)
    assert r.status_code == 200, r.text
    return r.json()["results"]


async def test_math_hogql_sum(client, data):
    results = await run(client, data, trends({"event": "$pageview", "math": "hogql",
                                              "math_hogql": "sum(toFloat(properties.price))"}))
    assert results[0]["data"] == [30, 5, 0, 0, 0]


async def test_math_hogql_arithmetic_on_aggregate(client, data):
    results = await run(client, data, trends({"event": None, "math": "hogql",
                                              "math_hogql": "avg(toFloat(properties.price)) + 1000"}))
    assert results[0]["data"] == [1015, 1005, 1007.5, 0, 1100]


async def test_math_hogql_count_distinct_person_property(client, data):
    results = await run(client, data, trends({"event": None, "math": "hogql",
                                              "math_hogql": "uniq(person.properties.email)"},
                                             trendsFilter={"display": "ActionsLineGraphCumulative"}))
    assert results[0]["data"][-1] == 4  # 2 + 1 + 1 + 0 + 1, cumulative per day


async def test_breakdown_hogql(client, data):
    results = await run(client, data, trends({"event": "$pageview"}, breakdownFilter={
        "breakdown_type": "hogql", "breakdown": "properties.$browser"}))
    got = {r["breakdown_value"]: r["data"] for r in results}
    assert got == {"Chrome": [2, 0, 0, 0, 0], "Firefox": [0, 1, 0, 0, 0]}


async def test_breakdown_hogql_alias_names_the_expression_only(client, data):
    """`expr AS name` in a breakdown is accepted and the name ignored (PostHog's alias forms)."""
    for breakdown in ("properties.$browser AS browser", "properties.$browser as `Browser name`"):
        results = await run(client, data, trends({"event": "$pageview"}, breakdownFilter={
            "breakdown_type": "hogql", "breakdown": breakdown}))
        assert {r["breakdown_value"]: r["data"] for r in results} == {"Chrome": [2, 0, 0, 0, 0],
                                                                      "Firefox": [0, 1, 0, 0, 0]}
    results = await run(client, data, trends({"event": "signup"}, breakdownFilter={"breakdowns": [
        {"type": "hogql", "property": "properties.location AS loc"}]}))
    assert [(r["breakdown_value"], r["count"]) for r in results] == [(["Paris"], 1)]


async def test_breakdowns_list_hogql_concat(client, data):
    results = await run(client, data, trends({"event": "signup"}, breakdownFilter={"breakdowns": [
        {"type": "hogql", "property": "concat(person.properties.plan, ' : ', properties.location)"}]}))
    assert [(r["breakdown_value"], r["count"]) for r in results] == [(["free : Paris"], 1)]


async def test_breakdown_hogql_numeric_expression(client, data):
    results = await run(client, data, trends({"event": None}, breakdownFilter={
        "breakdown_type": "hogql", "breakdown": "toFloat(properties.price) >= 50"}))
    assert {r["breakdown_value"]: r["count"] for r in results} == {"0": 4, "1": 1}  # comparisons are UInt8


async def test_hogql_property_filter(client, data):
    results = await run(client, data, trends({"event": None, "properties": [
        {"type": "hogql", "key": "toFloat(properties.price) > 8"}]}))
    assert results[0]["data"] == [2, 0, 0, 0, 1]
    results = await run(client, data, trends({"event": None}, properties=[
        {"type": "hogql", "key": "person.properties.plan = 'free'"}]))
    assert results[0]["data"] == [0, 1, 1, 0, 0]


async def test_hogql_in_trends_stays_in_environment(client, data):
    # An IN subquery inside a filter gets the team filter too: B's "leak" user never matches.
    results = await run(client, data, trends({"event": None, "properties": [
        {"type": "hogql", "key": "distinct_id IN (SELECT distinct_id FROM events WHERE event = 'secret_b') "
                                 "OR distinct_id = 'leak'"}]}))
    assert results[0]["data"] == [0, 0, 0, 0, 0]


async def test_errors_name_the_field(client, data):
    r = await post(client, data, trends({"event": None, "math": "hogql", "math_hogql": "sum(properties.x"}))
    body = r.json()
    assert r.status_code == 400 and body["type"] == "validation_error"
    assert body["attr"] == "query.series[0].math_hogql" and "line 1, column" in body["detail"]
    r = await post(client, data, trends({"event": None}, breakdownFilter={
        "breakdown_type": "hogql", "breakdown": "file('/etc/passwd')"}))
    assert r.status_code == 400 and "file" in r.json()["detail"]
    assert r.json()["attr"] == "query.breakdownFilter.breakdown"
    r = await post(client, data, trends({"event": None, "properties": [{"type": "hogql", "key": "team_id = 1"}]}))
    assert r.status_code == 400 and r.json()["attr"] == "query.series[0].properties[0].key"
    r = await post(client, data, trends({"event": None, "math": "hogql", "math_hogql": "quantile(2)(1)"}))
    assert r.status_code == 400 and "between 0 and 1" in r.json()["detail"]
    r = await post(client, data, trends({"event": None, "math": "hogql", "math_hogql": "countIf(1, 2, 3)"}))
    assert r.status_code == 400 and "countIf() takes 1 to 2 arguments, got 3" in r.json()["detail"]


async def test_math_hogql_non_numeric_counts_as_zero(client, data):
    results = await run(client, data, trends({"event": "signup", "math": "hogql", "math_hogql": "any(event)"}))
    assert results[0]["data"] == [0, 0, 0, 0, 0]
    results = await run(client, data, trends({"event": "signup", "math": "hogql",
                                              "math_hogql": "any(properties.price)"}))
    assert results[0]["data"] == [0, 0, 7.5, 0, 0]  # the string "7.5" is a number

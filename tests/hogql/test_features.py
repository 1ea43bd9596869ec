"""HogQLQuery features through `POST query/`, executed on chDB over the two-environment dataset of
conftest.py: variables, persons-on-events modes, RIGHT/FULL/CROSS joins and USING, INTERSECT/EXCEPT,
lambdas, window frames, and the length/nesting limits."""

from __future__ import annotations

import pytest

from tests.hogql.conftest import hogql, post
from tests.query_engine.helpers import insert_events, insert_override, insert_person, person_uuid


def var(code_name: str, value=None, **extra) -> dict:
    return {"variableId": f"id-{code_name}", "code_name": code_name, **({"value": value} if value is not None else {}),
            **extra}


def variables(*items: dict) -> dict:
    return {item["variableId"]: item for item in items}


async def run(client, env, text: str, **query) -> dict:
    r = await post(client, env, {"kind": "HogQLQuery", "query": text, **query})
    assert r.status_code == 200, r.text
    return r.json()


async def error(client, env, text: str, **query) -> dict:
    r = await post(client, env, {"kind": "HogQLQuery", "query": text, **query})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "validation_error"
    return body


class TestVariables:
    async def test_string_variable(self, client, data):
        body = await run(client, data, "SELECT count() FROM events WHERE event = {variables.event_name}",
                         variables=variables(var("event_name", "$pageview")))
        assert body["results"] == [[3]]
        assert "$pageview" not in body["clickhouse"]  # a parameter, not text

    async def test_number_and_list_variables(self, client, data):
        text = ("SELECT distinct_id FROM events WHERE toFloat(properties.price) > {variables.min_price} "
                "AND distinct_id IN {variables.people} ORDER BY distinct_id")
        body = await run(client, data, text, variables=variables(var("min_price", 15), var("people", ["u1", "u3"])))
        assert body["results"] == [["u1"], ["u3"]]

    async def test_null_and_missing_values_are_null(self, client, data):
        text = "SELECT {variables.a} IS NULL, {variables.b} IS NULL, {variables.c}"
        body = await run(client, data, text, variables=variables(var("a", "x", isNull=True), var("b"), var("c", True)))
        assert body["results"] == [[1, 1, True]]

    async def test_with_values_placeholders(self, client, data):
        body = await run(client, data, "SELECT count() FROM events WHERE event = {ev} AND distinct_id = {variables.who}",
                         values={"ev": "signup"}, variables=variables(var("who", "u2")))
        assert body["results"] == [[1]]

    async def test_hostile_value_is_a_parameter(self, client, data):
        body = await run(client, data, "SELECT count() FROM events WHERE event = {variables.v}",
                         variables=variables(var("v", "x' OR 1=1 --")))
        assert body["results"] == [[0]] and "OR 1=1" not in body["clickhouse"]

    async def test_unknown_variable_is_a_400_with_suggestions(self, client, data):
        body = await error(client, data, "SELECT {variables.evnt_name}", variables=variables(var("event_name", "x")))
        assert body["attr"] == "query.variables"
        assert "'evnt_name'" in body["detail"] and "Did you mean event_name?" in body["detail"]
        body = await error(client, data, "SELECT {variables.x}")
        assert body["attr"] == "query.variables" and "'x'" in body["detail"]

    async def test_malformed_variables(self, client, data):
        body = await error(client, data, "SELECT {variables.x}", variables={"v1": {"value": 1}})
        assert body["attr"] == "query.variables.v1" and "code_name" in body["detail"]
        body = await error(client, data, "SELECT {variables.x}", variables=variables(var("x", {"a": 1})))
        assert body["attr"] == "query.query" and "{variables.x}" in body["detail"]

    async def test_inside_a_data_visualization_node(self, client, data):
        source = {"kind": "HogQLQuery", "query": "SELECT count() FROM events WHERE distinct_id = {variables.who}",
                  "variables": variables(var("who", "u1"))}
        r = await post(client, data, {"kind": "DataVisualizationNode", "source": source})
        assert r.status_code == 200 and r.json()["results"] == [[2]]
        r = await post(client, data, {"kind": "DataVisualizationNode", "source": {**source, "variables": {}}})
        assert r.status_code == 400 and r.json()["attr"] == "query.source.variables"


@pytest.fixture
async def merged(data, backends):
    """u7's events were ingested with the snapshot {"plan": "old"}; u7's person now says "new"; u7 was then
    merged into u8 (an override), whose person says "merged"."""
    ch = backends.clickhouse
    await insert_events(ch, data.id, [{"event": "$pageview", "distinct_id": "u7", "timestamp": "2024-01-04T10:00:00Z",
                                      "person_properties": {"plan": "old"}}])
    await insert_person(ch, data.id, ["u7"], {"plan": "new"})
    await insert_person(ch, data.id, ["u8"], {"plan": "merged"})
    await insert_override(ch, data.id, "u7", "u8")
    return data


class TestPersonsOnEventsModes:
    TEXT = ("SELECT toString(person_id), person.properties.plan, toString(person.id), "
            "toString(toDate(person.created_at)) FROM events WHERE distinct_id = 'u7'")

    @pytest.mark.parametrize("mode,person,plan,created", [
        ("disabled", "u7", "new", "2020-01-01"),  # the person row (helpers.insert_person)
        ("person_id_no_override_properties_on_events", "u7", "old", "1970-01-01"),  # the event's (unset) snapshot
        ("person_id_override_properties_on_events", "u8", "old", "1970-01-01"),
        ("person_id_override_properties_joined", "u8", "merged", "2020-01-01"),
    ])
    async def test_mode(self, client, merged, mode, person, plan, created):
        body = await run(client, merged, self.TEXT, modifiers={"personsOnEventsMode": mode})
        pid = person_uuid(person, merged.id)
        assert body["results"] == [[pid, plan, pid, created]]
        assert body["modifiers"]["personsOnEventsMode"] == mode

    async def test_default_mode_uses_overrides(self, client, merged):
        body = await run(client, merged, self.TEXT)
        assert body["results"] == [[person_uuid("u8", merged.id), "old", person_uuid("u8", merged.id), "1970-01-01"]]

    @pytest.mark.parametrize("mode,plan", [("person_id_override_properties_on_events", "merged"),
                                           ("person_id_no_override_properties_on_events", "new")])
    async def test_joined_events_resolve_their_person_too(self, client, merged, mode, plan):
        text = ("SELECT p.properties.plan FROM persons p JOIN events e ON e.person_id = p.id "
                "WHERE e.distinct_id = 'u7'")
        body = await run(client, merged, text, modifiers={"personsOnEventsMode": mode})
        assert body["results"] == [[plan]]

    async def test_counting_persons_follows_the_mode(self, client, merged):
        text = "SELECT count(DISTINCT person_id) FROM events WHERE distinct_id IN ('u3', 'u7')"
        assert (await run(client, merged, text))["results"] == [[2]]
        body = await run(client, merged, f"SELECT count() FROM events WHERE person_id = '{person_uuid('u8', merged.id)}'")
        assert body["results"] == [[1]]


class TestJoins:
    async def test_right_join_keeps_persons_without_events(self, client, data, backends):
        await insert_person(backends.clickhouse, data.id, ["u4"], {"email": "u4@x.io"})
        text = ("SELECT p.properties.email AS email, countIf(e.event != '') AS n FROM events e "
                "RIGHT JOIN persons p ON p.id = e.person_id GROUP BY email ORDER BY email")
        body = await run(client, data, text)
        assert body["results"] == [["u1@x.io", 2], ["u2@x.io", 2], ["u3@y.io", 1], ["u4@x.io", 0]]

    async def test_full_join_keeps_both_sides(self, client, data, backends):
        await insert_person(backends.clickhouse, data.id, ["u4"], {"email": "u4@x.io"})
        text = ("SELECT x.d, p.properties.email AS email FROM (SELECT distinct_id AS d, person_id AS pid FROM events "
                "WHERE event = 'purchase' OR distinct_id = 'ghost') x FULL OUTER JOIN persons p ON p.id = x.pid "
                "ORDER BY email, x.d")
        await insert_events(backends.clickhouse, data.id, [
            {"event": "$pageview", "distinct_id": "ghost", "timestamp": "2024-01-04T00:00:00Z"}])
        body = await run(client, data, text)
        # ghost has no person (NULL email sorts last); u1, u2, u4 have no purchase ('' distinct id).
        assert body["results"] == [["", "u1@x.io"], ["", "u2@x.io"], ["u3", "u3@y.io"], ["", "u4@x.io"],
                                   ["ghost", None]]

    async def test_cross_and_comma_joins(self, client, data):
        assert (await run(client, data, "SELECT count() FROM events CROSS JOIN persons"))["results"] == [[15]]
        assert (await run(client, data, "SELECT count() FROM events e, persons p WHERE p.id = e.person_id"))[
            "results"] == [[5]]

    async def test_using(self, client, data):
        text = ("SELECT e.event, pdi.person_id = e.person_id FROM events e JOIN person_distinct_ids pdi "
                "USING (distinct_id) WHERE e.event = 'purchase'")
        assert (await run(client, data, text))["results"] == [["purchase", True]]


class TestSetOperations:
    async def test_intersect(self, client, data):
        text = ("SELECT distinct_id FROM events WHERE event = '$pageview' INTERSECT DISTINCT "
                "SELECT distinct_id FROM events WHERE event = 'signup'")
        assert (await run(client, data, text))["results"] == [["u2"]]

    async def test_except(self, client, data):
        text = "SELECT distinct_id FROM person_distinct_ids EXCEPT SELECT distinct_id FROM events WHERE event = '$pageview'"
        assert (await run(client, data, text))["results"] == [["u3"]]

    async def test_plain_intersect_keeps_duplicates_and_distinct_removes_them(self, client, data):
        text = "SELECT x FROM (SELECT distinct_id AS x FROM events {op} SELECT arrayJoin(['u1', 'u1', 'u3'])) ORDER BY x"
        assert (await run(client, data, text.format(op="INTERSECT")))["results"] == [["u1"], ["u1"], ["u3"]]
        assert (await run(client, data, text.format(op="INTERSECT DISTINCT")))["results"] == [["u1"], ["u3"]]

    async def test_union_distinct(self, client, data):
        text = "SELECT x FROM (SELECT event AS x FROM events UNION DISTINCT SELECT event FROM events) ORDER BY x"
        assert (await run(client, data, text))["results"] == [["$pageview"], ["purchase"], ["signup"]]


class TestLambdas:
    @pytest.mark.parametrize("text,expected", [
        ("SELECT arrayMap(x -> x * 2, [1, 2, 3])", [2, 4, 6]),
        ("SELECT arrayFilter(x -> x > 1, [1, 2, 3])", [2, 3]),
        ("SELECT arrayExists(x -> x = 'b', ['a', 'b'])", 1),
        ("SELECT arrayAll(x -> x > 1, [1, 2])", 0),
        ("SELECT arraySum(x -> x * 10, [1, 2])", 30),
        ("SELECT arrayCount(x -> x > 1, [1, 2, 3])", 2),
        ("SELECT arraySort(x -> -x, [1, 3, 2])", [3, 2, 1]),
        ("SELECT arraySort([3, 1, 2])", [1, 2, 3]),
        ("SELECT arrayFirst(x -> x > 1, [1, 2, 3])", 2),
        ("SELECT arrayMap((x, y) -> concat(x, y), ['a', 'b'], ['c', 'd'])", ["ac", "bd"]),
        ("SELECT arrayMap(x -> arrayMap(y -> x + y, [1, 2]), [10, 20])", [[11, 12], [21, 22]]),
        ("SELECT arrayMap(event -> upper(event), ['a'])", ["A"]),  # the argument shadows the field
    ])
    async def test_constant(self, client, data, text, expected):
        assert (await run(client, data, text))["results"] == [[expected]]

    async def test_over_fields(self, client, data):
        text = "SELECT arrayFilter(x -> x = event, ['signup', 'other']) FROM events WHERE event = 'signup'"
        assert (await run(client, data, text))["results"] == [[["signup"]]]
        text = "SELECT arraySum(x -> ifNull(toFloat(x), 0.0), groupArray(properties.price)) FROM events"
        assert (await run(client, data, text))["results"] == [[142.5]]

    async def test_errors(self, client, data):
        body = await error(client, data, "SELECT arrayMap((x, y) -> x, [1])")
        assert "one argument per array" in body["detail"] and body["attr"] == "query.query"
        body = await error(client, data, "SELECT arrayMap(x -> currentUser(), [1])")
        assert "Unsupported function call 'currentUser(...)'" in body["detail"]


class TestWindows:
    async def test_rows_frame(self, client, data):
        text = ("SELECT distinct_id, sum(toFloat(properties.price)) OVER (ORDER BY timestamp ROWS BETWEEN 1 PRECEDING "
                "AND CURRENT ROW) FROM events ORDER BY timestamp")
        body = await run(client, data, text)
        assert body["results"] == [["u1", 10.0], ["u1", 30.0], ["u2", 25.0], ["u2", 12.5], ["u3", 107.5]]

    async def test_rows_short_form_is_a_running_total(self, client, data):
        text = "SELECT sum(toFloat(properties.price)) OVER (ORDER BY timestamp ROWS UNBOUNDED PRECEDING) FROM events ORDER BY timestamp"
        assert [r[0] for r in (await run(client, data, text))["results"]] == [10.0, 30.0, 35.0, 42.5, 142.5]

    async def test_range_frame(self, client, data):
        text = ("SELECT x, sum(x) OVER (ORDER BY x RANGE BETWEEN 1 PRECEDING AND 1 FOLLOWING) "
                "FROM (SELECT arrayJoin([1, 2, 3, 5]) AS x) ORDER BY x")
        assert (await run(client, data, text))["results"] == [[1, 3], [2, 6], [3, 5], [5, 5]]

    async def test_named_window_and_ranking(self, client, data):
        text = ("SELECT distinct_id, event, row_number() OVER w, rank() OVER (ORDER BY distinct_id), "
                "dense_rank() OVER (ORDER BY distinct_id) FROM events WHERE distinct_id != 'u3' "
                "WINDOW w AS (PARTITION BY distinct_id ORDER BY timestamp) ORDER BY distinct_id, timestamp")
        assert (await run(client, data, text))["results"] == [
            ["u1", "$pageview", 1, 1, 1], ["u1", "$pageview", 2, 1, 1],
            ["u2", "$pageview", 1, 3, 2], ["u2", "signup", 2, 3, 2]]

    async def test_lag_lead_first_last(self, client, data):
        text = ("SELECT event, lag(event) OVER w, lead(event) OVER w, first_value(event) OVER w, "
                "last_value(event) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) FROM events "
                "WHERE distinct_id = 'u2' WINDOW w AS (PARTITION BY distinct_id ORDER BY timestamp) ORDER BY timestamp")
        assert (await run(client, data, text))["results"] == [
            ["$pageview", "", "signup", "$pageview", "signup"], ["signup", "$pageview", "", "$pageview", "signup"]]

    async def test_errors(self, client, data):
        body = await error(client, data, "SELECT row_number() FROM events")
        assert "needs OVER" in body["detail"] and body["attr"] == "query.query"
        body = await error(client, data, "SELECT nth_value(event) OVER () FROM events")
        assert "nth_value() takes 2 arguments, got 1" in body["detail"]
        body = await error(client, data, "SELECT sum(1) OVER w2 FROM events WINDOW w AS (ORDER BY timestamp)")
        assert "Unknown window 'w2'" in body["detail"]


class TestLimits:
    async def test_default_max_length(self, client, data):
        body = await error(client, data, "SELECT '" + "a" * 100_000 + "'")
        assert body["attr"] == "query.query" and "the limit is 100000" in body["detail"]
        assert (await run(client, data, "SELECT length('" + "a" * 90_000 + "')"))["results"] == [[90_000]]

    async def test_max_length_setting(self, client, data, settings, monkeypatch):
        monkeypatch.setattr(settings, "hogql_max_length", 1_000)
        body = await error(client, data, "SELECT '" + "a" * 1_000 + "'")
        assert "the limit is 1000 (APP_HOGQL_MAX_LENGTH)" in body["detail"]

    @pytest.mark.parametrize("text", [
        "SELECT " + "(" * 100 + "1" + ")" * 100, "SELECT " + "NOT " * 3000 + "1", "SELECT " + "- " * 3000 + "1",
        "SELECT " + "arrayMap(x -> " * 80 + "x" + ", [1])" * 80, "SELECT arrayMap(" + "x -> " * 2000 + "x, [1])",
        "SELECT " + "CASE WHEN 1 THEN " * 400 + "1" + " END" * 400, " UNION ALL ".join(["SELECT 1"] * 2500),
    ])
    async def test_deep_nesting_is_a_400(self, client, data, text):
        body = await error(client, data, text)
        assert body["attr"] == "query.query" and "nested" in body["detail"]


async def test_readme_variables_example(client, data):
    import json
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "README.md"
    block = re.search(r"# a variable, a lambda and a running total over a window frame\n.*?-d '(.*?)' \\\n",
                      readme.read_text(), re.S)
    assert block is not None
    query = json.loads(block.group(1))["query"]
    r = await post(client, data, query)
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [["2024-01-01", 2, 2, ["CHROME"]], ["2024-01-02", 1, 3, ["FIREFOX"]]]


class TestFrozenClock:
    """`now()`/`today()` follow the application clock when it is pinned (APP_FROZEN_NOW)."""

    async def test_now_and_today_are_the_frozen_instant(self, client, data):
        from app import clock

        clock.freeze("2024-01-15T12:00:00Z")
        try:
            body = await hogql(client, data, "SELECT toString(now()), toString(today())")
        finally:
            clock.freeze(None)
        assert body["results"] == [["2024-01-15 12:00:00.000000", "2024-01-15"]]

"""`GET|POST insights/{id}/suggestions/` (spec/API.md §3.12): PostHog's deterministic retention
suggestions exactly, and trends suggestions derived from real events that must run through `POST query/`."""

from __future__ import annotations

import pytest

from app import clock
from app.services.insight_suggestions import PROPERTY_SPLIT_SQL
from tests.conftest import TestEnv
from tests.routers.insight_helpers import create_insight
from tests.query_engine.helpers import insert_events

T0 = "2020-01-12T12:00:00Z"


def trends(**extra) -> dict:
    source = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
              "dateRange": {"date_from": "-7d"}, **extra}
    return {"kind": "InsightVizNode", "source": source}


def retention(entity: dict, period: str | None = "Week") -> dict:
    rf = {"returningEntity": entity, "targetEntity": entity}
    if period:
        rf["period"] = period
    return {"kind": "InsightVizNode", "source": {
        "kind": "RetentionQuery", "retentionFilter": rf, "dateRange": {"date_from": "-30d"},
        "properties": [{"key": "$browser", "value": "Chrome", "operator": "exact", "type": "event"}],
        "filterTestAccounts": True}}


@pytest.fixture
async def data(backends, env):
    clock.freeze(T0)
    browsers, plans = ["Chrome", "Safari", "Firefox", "Edge"], ["free", "paid"]
    events = [{"event": "$pageview", "distinct_id": f"u{i % 7}", "timestamp": f"2020-01-{8 + i % 4:02d}T10:00:00Z",
               "properties": {"$browser": browsers[i % 4], "plan": plans[i % 2 if i < 30 else 0],
                              "$insert_id": f"id-{i}", "constant": "x",
                              "device_type": ["Desktop", "Mobile"][i % 3 == 0]}}
              for i in range(40)]
    await insert_events(backends.clickhouse, env.id, events)
    yield
    clock.freeze(None)


async def make(client, env: TestEnv, query) -> dict:
    return await create_insight(client, env, query)


async def suggestions(client, env: TestEnv, insight: dict, *, context=None, headers=None, status=200):
    url = f"/api/environments/{env.id}/insights/{insight['id']}/suggestions/"
    if context is None:
        r = await client.get(url, headers=headers or env.headers)
    else:
        r = await client.post(url, json={"context": context}, headers=headers or env.headers)
    assert r.status_code == status, r.text
    return r.json()


class TestRetention:
    async def test_events_entity_exact(self, client, env, data):
        query = retention({"id": "signed up", "name": "signed up", "type": "events", "custom_name": "Sign-ups",
                           "properties": [{"key": "plan", "value": "paid", "operator": "exact", "type": "event"}]})
        body = await suggestions(client, env, await make(client, env, query))
        src = query["source"]
        series = {"kind": "EventsNode", "event": "signed up", "name": "signed up", "custom_name": "Sign-ups",
                  "properties": [{"key": "plan", "value": "paid", "operator": "exact", "type": "event"}]}
        shared = {"series": [series], "interval": "day", "dateRange": src["dateRange"],
                  "properties": src["properties"], "filterTestAccounts": True}
        assert body == [
            {"title": "Stickiness of users who performed signed up",
             "description": "See how frequently retained users perform this event (days per week)",
             "targetQuery": {"kind": "InsightVizNode", "source": {"kind": "StickinessQuery", **shared,
                                                                  "stickinessFilter": {}}}},
            {"title": "Lifecycle of users who perform signed up",
             "description": "See lifecycle of users who perform this event (new vs returning vs resurrecting vs dormant)",
             "targetQuery": {"kind": "InsightVizNode", "source": {"kind": "LifecycleQuery", **shared,
                                                                  "lifecycleFilter": {}}}},
        ]

    @pytest.mark.parametrize(("period", "interval", "unit"), [
        ("Month", "week", "weeks per month"), ("Hour", "hour", "hours per day"), ("Day", "day", "days per week"),
        (None, "day", "days per week")])
    async def test_periods(self, client, env, data, period, interval, unit):
        body = await suggestions(client, env, await make(client, env, retention({"kind": "EventsNode", "name": "x"}, period)))
        assert body[0]["targetQuery"]["source"]["interval"] == interval
        assert body[0]["description"] == f"See how frequently retained users perform this event ({unit})"
        assert body[0]["targetQuery"]["source"]["series"][0]["event"] == "x"

    async def test_actions_entity(self, client, env, data):
        body = await suggestions(client, env, await make(client, env, retention({"id": 7, "type": "actions"})))
        assert body[0]["title"] == "Stickiness of users who performed Action 7"
        assert body[1]["title"] == "Lifecycle of users who perform Action 7"
        assert body[0]["targetQuery"]["source"]["series"] == [
            {"kind": "ActionsNode", "id": 7, "name": None, "custom_name": None, "properties": None}]
        named = await suggestions(client, env, await make(client, env, retention(
            {"id": "12", "type": "actions", "name": "Checkout"})))
        assert named[0]["title"] == "Stickiness of users who performed Checkout"
        assert named[0]["targetQuery"]["source"]["series"][0]["id"] == 12

    async def test_no_entity_type(self, client, env, data):
        assert await suggestions(client, env, await make(client, env, retention({"name": "x"}))) == []


class TestTrends:
    async def test_derived_suggestions_run_through_query_endpoint(self, client, env, data):
        body = await suggestions(client, env, await make(client, env, trends()))
        assert [s["title"] for s in body] == [
            "$pageview broken down by $browser", "$pageview compared with the previous period",
            "Unique users who performed $pageview"]
        assert body[0]["targetQuery"]["source"]["breakdownFilter"] == {"breakdown_type": "event", "breakdown": "$browser"}
        assert body[0]["description"].startswith("Splits $pageview by the event property $browser: 100% of these events")
        assert body[1]["targetQuery"]["source"]["compareFilter"] == {"compare": True}
        assert body[2]["targetQuery"]["source"]["series"][0]["math"] == "dau"
        for s in body:
            r = await client.post(f"/api/environments/{env.id}/query/", json={"query": s["targetQuery"]},
                                  headers=env.headers)
            assert r.status_code == 200, (s["title"], r.text)
            assert r.json()["results"], s["title"]
        dau = (await client.post(f"/api/environments/{env.id}/query/", json={"query": body[2]["targetQuery"]},
                                 headers=env.headers)).json()
        assert max(dau["results"][0]["data"]) == 7  # seven distinct users a day, not 10 events

    async def test_context_ranks_a_named_property_first(self, client, env, data):
        insight = await make(client, env, trends())
        body = await suggestions(client, env, insight, context="Is the growth coming from the paid plan?")
        assert body[0]["title"] == "$pageview broken down by plan"
        body = await suggestions(client, env, insight, context="is it mobile? check the device type")
        assert body[0]["title"] == "$pageview broken down by device_type"
        body = await suggestions(client, env, insight, context="How many unique users is that?")
        assert body[0]["title"] == "Unique users who performed $pageview"
        hostile = "'; DROP TABLE events; -- {p0:String} plan"
        body = await suggestions(client, env, insight, context=hostile)  # plain text, never executed
        assert body[0]["title"] == "$pageview broken down by plan"

    async def test_only_what_is_missing(self, client, env, data):
        query = trends(compareFilter={"compare": True}, breakdownFilter={"breakdown": "plan"})
        query["source"]["series"][0]["math"] = "dau"
        assert await suggestions(client, env, await make(client, env, query)) == []

    async def test_action_only_series_suggest_nothing(self, client, env, data):
        query = trends()
        query["source"]["series"] = [{"kind": "ActionsNode", "id": 1}]
        assert await suggestions(client, env, await make(client, env, query)) == []

    async def test_no_query_or_other_node(self, client, env, data):
        table = {"kind": "DataTableNode", "source": {"kind": "EventsQuery", "select": ["*"]}}
        assert await suggestions(client, env, await make(client, env, table)) == []
        r = await client.post(f"/api/environments/{env.id}/insights/", json={"name": "no query"}, headers=env.headers)
        assert await suggestions(client, env, r.json()) == []

    async def test_split_query_is_parameterized(self):
        assert "{team:Int64}" in PROPERTY_SPLIT_SQL and "{events:Array(String)}" in PROPERTY_SPLIT_SQL


class TestSuggestionsAccess:
    async def test_bad_context_is_400(self, client, env, data):
        insight = await make(client, env, trends())
        url = f"/api/environments/{env.id}/insights/{insight['id']}/suggestions/"
        r = await client.post(url, json={"context": 5}, headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] == "context"
        r = await client.post(url, json={"context": "x" * 10_001}, headers=env.headers)
        assert r.status_code == 400 and r.json()["code"] == "max_length"
        r = await client.post(url, content=b"{nope", headers={**env.headers, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "parse_error"

    async def test_scopes_and_lookup(self, client, env, other_env, data):
        insight = await make(client, env, trends())
        r = await client.get(f"/api/environments/{env.id}/insights/{insight['id']}/suggestions/")
        assert r.status_code == 403
        wrong = await env.make_key(["query:read"])
        body = await suggestions(client, env, insight, headers={"Authorization": f"Bearer {wrong}"}, status=403)
        assert body["detail"] == "API key missing required scope 'insight:read'"
        key = await env.make_key(["insight:read"])
        await suggestions(client, env, insight, context="", headers={"Authorization": f"Bearer {key}"})
        r = await client.get(f"/api/environments/{other_env.id}/insights/{insight['id']}/suggestions/",
                             headers=other_env.headers)
        assert r.status_code == 404
        await client.patch(f"/api/environments/{env.id}/insights/{insight['id']}/", json={"deleted": True},
                           headers=env.headers)
        await suggestions(client, env, insight, status=404)

"""Property/event definitions inferred at ingestion, and their API."""

from __future__ import annotations

import time

import pytest

from app.ingestion.definitions import infer_type
from tests.ingestion.helpers import event


async def send(client, env, *evs):
    r = await client.post("/batch/", json={"api_key": env.creds.project_api_key, "batch": list(evs)})
    assert r.status_code == 200, r.text


def url(env, path):
    return f"/api/environments/{env.id}/{path}"


class TestInference:
    async def test_types_inferred_on_first_sight(self, client, env):
        now_s = time.time()
        await send(client, env, event("purchase", properties={
            "revenue": 12.5, "count": 3, "is_paid": True, "flag_text": "false", "plan": "pro",
            "signup_date": "2026-11-01T10:00:00Z", "created_at": now_s, "utm_source": "2026-01-01",
            "nothing": None, "list": [1, 2]}, **{"$set": {"age": 31, "email": "a@b.c"}}))
        # a later, differently typed value does not change the first inference
        await send(client, env, event("purchase", properties={"revenue": "lots"}))
        r = await client.get(url(env, "property_definitions/?limit=100"), headers=env.headers)
        assert r.status_code == 200
        types = {d["name"]: d["property_type"] for d in r.json()["results"]}
        assert types["revenue"] == "Numeric" and types["count"] == "Numeric"
        assert types["is_paid"] == "Boolean" and types["flag_text"] == "Boolean"
        assert types["plan"] == "String" and types["utm_source"] == "String"
        assert types["signup_date"] == "DateTime" and types["created_at"] == "DateTime"
        assert types["nothing"] is None and types["list"] is None
        assert "$set" not in types
        r = await client.get(url(env, "property_definitions/?type=person"), headers=env.headers)
        person = {d["name"]: d["property_type"] for d in r.json()["results"]}
        # utm_source is copied onto the person (§9.1); only the `utm_` prefix forces String (as PostHog)
        assert person == {"age": "Numeric", "email": "String", "utm_source": "String",
                          "$initial_utm_source": "DateTime"}
        assert all(d["type"] == "person" for d in r.json()["results"])


    @pytest.mark.parametrize("name,value,expected", [
        ("answer", "True", "String"),  # only true/false/TRUE/FALSE are booleans
        ("answer", "TRUE", "Boolean"),
        ("seen", "2026-01-01 10:00:00 UTC", "DateTime"),  # a date, a time with seconds, then anything
        ("seen", "Thu, 26 Nov 2026 10:00:00 GMT", "DateTime"),  # RFC 2822
        ("seen", "26/11/2026", "DateTime"),
        ("seen", "2026-01-01T10:00", "String"),  # a time without seconds is not taken for a date
        ("created_at", 1_600_000_000_000, "DateTime"),  # milliseconds compare as they are
        ("created_at", 5, "Numeric"),
        ("count", 1_795_000_000, "Numeric"),  # epoch-like numbers need a time-ish name
    ])
    def test_inference_rules(self, name, value, expected):
        assert infer_type(name, value, now_s=1_795_000_000) == expected

    async def test_group_columns_are_not_event_properties(self, client, env):
        await send(client, env, event("e", properties={"$groups": {"company": "acme"}, "kept": 1}))
        r = await client.get(url(env, "property_definitions/?limit=100"), headers=env.headers)
        names = {d["name"] for d in r.json()["results"]}
        assert "kept" in names and "$group_0" not in names and "$groups" not in names


    async def test_group_identify_gives_group_properties_only(self, client, env):
        await send(client, env, event("$groupidentify", "g-user", properties={
            "$group_type": "company", "$group_key": "acme", "$group_set": {"employees": 12, "name": "Acme"}}),
            event("$groupidentify", "g-user", properties={
                "$group_type": "project", "$group_key": "p1", "$group_set": {"stage": "beta"}}))
        r = await client.get(url(env, "property_definitions/?type=group&group_type_index=0"), headers=env.headers)
        types = {d["name"]: d["property_type"] for d in r.json()["results"]}
        assert types == {"employees": "Numeric", "name": "String"}
        assert all(d["type"] == "group" for d in r.json()["results"])
        r = await client.get(url(env, "property_definitions/?type=group&group_type_index=1"), headers=env.headers)
        assert [d["name"] for d in r.json()["results"]] == ["stage"]
        r = await client.get(url(env, "property_definitions/?limit=100"), headers=env.headers)
        assert not {"$group_type", "$group_key", "employees"} & {d["name"] for d in r.json()["results"]}
        r = await client.get(url(env, "event_definitions/"), headers=env.headers)
        assert [d["name"] for d in r.json()["results"]] == ["$groupidentify"]


class TestApi:
    async def test_search_type_filter_pagination_patch(self, client, env):
        await send(client, env, event("e", properties={"alpha_one": 1, "alpha_two": "x", "beta": True}))
        r = await client.get(url(env, "property_definitions/?search=alpha"), headers=env.headers)
        assert {d["name"] for d in r.json()["results"]} == {"alpha_one", "alpha_two"}
        r = await client.get(url(env, "property_definitions/?property_type=Boolean"), headers=env.headers)
        assert [d["name"] for d in r.json()["results"]] == ["beta"]
        r = await client.get(url(env, "property_definitions/?limit=1"), headers=env.headers)
        page = r.json()
        assert page["count"] >= 4 and len(page["results"]) == 1 and page["next"] is not None
        pid = next(d["id"] for d in (await client.get(url(env, "property_definitions/?search=alpha_two"),
                                                      headers=env.headers)).json()["results"])
        r = await client.patch(url(env, f"property_definitions/{pid}/"), json={"property_type": "Numeric"},
                               headers=env.headers)
        assert r.status_code == 200 and r.json()["property_type"] == "Numeric" and r.json()["is_numerical"]
        r = await client.patch(url(env, f"property_definitions/{pid}/"), json={"property_type": "Float"},
                               headers=env.headers)
        assert r.status_code == 400
        r = await client.get(url(env, f"property_definitions/{pid}/"), headers=env.headers)
        assert r.status_code == 200 and r.json()["name"] == "alpha_two" and r.json()["property_type"] == "Numeric"

    async def test_words_ordering_and_hidden_properties(self, client, env):
        await send(client, env, event("e", properties={
            "zeta": 1, "alpha_long_name": 1, "beta": 1, "plan_name": "x", "distinct_id": "d",
            "$initial_referrer": "r"}))
        r = await client.get(url(env, "property_definitions/?search=name plan"), headers=env.headers)
        assert [d["name"] for d in r.json()["results"]] == ["plan_name"]  # every word must match
        r = await client.get(url(env, "property_definitions/?limit=100"), headers=env.headers)
        names = [d["name"] for d in r.json()["results"]]
        assert names == sorted(names)  # by name, as PostHog
        assert "distinct_id" not in names and "$initial_referrer" not in names
        r = await client.get(url(env, "event_definitions/?search=e"), headers=env.headers)
        assert [d["name"] for d in r.json()["results"]] == ["e"]

    async def test_names_numerical_and_excluded_filters(self, client, env):
        await send(client, env, event("e", properties={"amount": 5, "score": 2.5, "label": "x", "timestamp": 3}))

        async def names(query):
            r = await client.get(url(env, f"property_definitions/?{query}"), headers=env.headers)
            assert r.status_code == 200, r.text
            return [d["name"] for d in r.json()["results"]]

        assert await names("properties=label,amount") == ["amount", "label"]
        assert await names("is_numerical=true") == ["amount", "score"]
        assert await names('is_numerical=true&excluded_properties=["score"]') == ["amount"]
        r = await client.get(url(env, "property_definitions/?excluded_properties=nope"), headers=env.headers)
        assert r.status_code == 400

    @pytest.mark.parametrize("query", ["type=group", "type=event&group_type_index=0", "type=group&group_type_index=7"])
    async def test_group_type_index_goes_with_group_type_only(self, client, env, query):
        r = await client.get(url(env, f"property_definitions/?{query}"), headers=env.headers)
        assert r.status_code == 400 and r.json()["type"] == "validation_error"

    async def test_other_environment_cannot_see_or_patch(self, client, env, other_env):
        await send(client, env, event("e", properties={"secret": 1}))
        r = await client.get(url(env, "property_definitions/"), headers=other_env.headers)
        assert r.status_code in (403, 404)
        pid = (await client.get(url(env, "property_definitions/?search=secret"), headers=env.headers)).json()["results"][0]["id"]
        r = await client.patch(url(other_env, f"property_definitions/{pid}/"), json={"property_type": "String"},
                               headers=other_env.headers)
        assert r.status_code == 404
        r = await client.get(url(other_env, f"property_definitions/{pid}/"), headers=other_env.headers)
        assert r.status_code == 404

    async def test_event_definitions_volume_and_last_seen(self, client, env):
        await send(client, env, event("signup"), event("signup"), event("login"))
        r = await client.get(url(env, "event_definitions/"), headers=env.headers)
        assert r.status_code == 200
        by_name = {d["name"]: d for d in r.json()["results"]}
        assert by_name["signup"]["volume_30_day"] == 2 and by_name["login"]["volume_30_day"] == 1
        assert by_name["signup"]["last_seen_at"] is not None
        r = await client.get(url(env, "event_definitions/?search=sign"), headers=env.headers)
        assert [d["name"] for d in r.json()["results"]] == ["signup"]

    async def test_requires_auth(self, client, env):
        assert (await client.get(url(env, "property_definitions/"))).status_code in (401, 403)

    async def test_patch_id_out_of_int4_range_is_404(self, client, env):
        # Found by the schemathesis run (tests/test_fuzz.py): asyncpg refused to bind the id → 500.
        for pid in (2**31, 6459038828133860983, 0):
            r = await client.patch(url(env, f"property_definitions/{pid}/"), json={"property_type": "String"},
                                   headers=env.headers)
            assert r.status_code == 404, (pid, r.text)
            assert r.json()["code"] == "not_found"

"""Property/event definitions inferred at ingestion, and their API."""

from __future__ import annotations

import time

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

    async def test_other_environment_cannot_see_or_patch(self, client, env, other_env):
        await send(client, env, event("e", properties={"secret": 1}))
        r = await client.get(url(env, "property_definitions/"), headers=other_env.headers)
        assert r.status_code in (403, 404)
        pid = (await client.get(url(env, "property_definitions/?search=secret"), headers=env.headers)).json()["results"][0]["id"]
        r = await client.patch(url(other_env, f"property_definitions/{pid}/"), json={"property_type": "String"},
                               headers=other_env.headers)
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

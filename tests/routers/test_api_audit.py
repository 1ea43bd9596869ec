"""Second audit of spec/API.md through the HTTP API, after the speed changes (lazy session,
in-process auth/snapshot caches, rendered-JSON reuse, coalescing followers, route order)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.routers.insight_helpers import create_insight

TRENDS = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
          "dateRange": {"date_from": "-3d"}}
VIZ = {"kind": "InsightVizNode", "source": TRENDS}
HOGQL = {"kind": "DataVisualizationNode", "source": {"kind": "HogQLQuery", "query": "select 1"}}

FULL = {"id", "short_id", "name", "derived_name", "filters", "query", "order", "deleted", "dashboards",
        "dashboard_tiles", "last_refresh", "cache_target_age", "next_allowed_client_refresh", "result", "hasMore",
        "columns", "created_at", "created_by", "description", "updated_at", "tags", "favorited", "saved",
        "last_modified_at", "last_modified_by", "is_sample", "effective_restriction_level",
        "effective_privilege_level", "user_access_level", "timezone", "is_cached", "query_status", "hogql", "types",
        "resolved_date_range", "alerts", "last_viewed_at", "filters_hash"}
BASIC = {"id", "short_id", "name", "derived_name", "filters", "query", "dashboards", "dashboard_tiles", "description",
         "last_refresh", "refreshing", "saved", "tags", "updated_at", "created_by", "created_at", "last_modified_at",
         "favorited", "user_access_level", "last_viewed_at"}


async def _poll(client, env, query_id: str):
    """GET query/{id}/ until it stops answering 202 (at most 10 s)."""
    for _ in range(400):
        r = await client.get(f"/api/environments/{env.id}/query/{query_id}/", headers=env.headers)
        if r.status_code != 202:
            return r
        await asyncio.sleep(0.025)
    return r

def base(env) -> str:
    return f"/api/environments/{env.id}/insights/"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_error(r, status: int, type_: str, code: str, detail: str | None = None, attr=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"type", "code", "detail", "attr"}, body
    assert (body["type"], body["code"], body["attr"]) == (type_, code, attr), body
    if detail is not None:
        assert body["detail"] == detail, body


# -- §3.1 / §3.2 representation ------------------------------------------------------------------

async def test_full_representation_fields_on_every_route(client, env):
    made = await create_insight(client, env, VIZ)
    assert set(made) == FULL
    for _ in range(3):  # the repeated cached retrieve (reused JSON) must not differ in shape
        r = await client.get(f"{base(env)}{made['id']}/", headers=env.headers)
        assert r.status_code == 200
        assert set(r.json()) == FULL
        assert r.json()["last_viewed_at"] is None
    listed = (await client.get(base(env), headers=env.headers)).json()["results"]
    assert set(listed[0]) == FULL
    assert listed[0]["last_viewed_at"] is not None
    patched = (await client.patch(f"{base(env)}{made['id']}/", json={"name": "x"}, headers=env.headers)).json()
    assert set(patched) == FULL and patched["last_viewed_at"] is None


async def test_miss_null_rules_and_timezone(client, env):
    made = await create_insight(client, env, VIZ)
    for name in ("result", "hasMore", "columns", "hogql", "types", "resolved_date_range", "last_refresh",
                 "cache_target_age", "next_allowed_client_refresh", "query_status", "timezone"):
        assert made[name] is None, name
    assert made["is_cached"] is False
    assert made["filters_hash"].startswith(f"cache_{env.id}_")
    r = (await client.get(f"{base(env)}{made['id']}/?refresh=force_cache", headers=env.headers)).json()
    assert r["timezone"] == "UTC" and r["result"] is None
    r = (await client.get(f"{base(env)}{made['id']}/?refresh=false", headers=env.headers)).json()
    assert r["timezone"] is None


async def test_basic_exact_keys(client, env):
    made = await create_insight(client, env, VIZ)
    listed = (await client.get(f"{base(env)}?basic=TRUE&refresh=blocking", headers=env.headers)).json()["results"]
    assert set(listed[0]) == BASIC and listed[0]["refreshing"] is False and listed[0]["last_refresh"] is None
    one = (await client.get(f"{base(env)}{made['id']}/?basic=on", headers=env.headers)).json()
    assert set(one) == BASIC
    searched = (await client.get(f"{base(env)}?basic=1&search=I", headers=env.headers)).json()["results"]
    assert set(searched[0]) == BASIC | {"search_match_type"}


# -- repeated retrieves after writes (rendered-JSON reuse, snapshots) ----------------------------

async def test_repeated_retrieve_sees_every_write(client, env):
    made = await create_insight(client, env, VIZ)
    url = f"{base(env)}{made['id']}/"
    computed = (await client.get(f"{url}?refresh=blocking", headers=env.headers)).json()
    assert computed["is_cached"] is False and computed["result"] is not None
    first = (await client.get(url, headers=env.headers)).json()
    assert first["is_cached"] is True and first["last_refresh"] == computed["last_refresh"]
    again = (await client.get(url, headers=env.headers)).json()
    assert again == first
    for body, check in (({"name": "renamed"}, lambda b: b["name"] == "renamed"),
                        ({"tags": ["A"]}, lambda b: b["tags"] == ["a"]),
                        ({"favorited": True}, lambda b: b["favorited"] is True),
                        ({"description": "d"}, lambda b: b["description"] == "d")):
        assert (await client.patch(url, json=body, headers=env.headers)).status_code == 200
        got = (await client.get(url, headers=env.headers)).json()
        assert check(got), got
        assert got["is_cached"] is True
    assert (await client.patch(url, json={"deleted": True}, headers=env.headers)).status_code == 200
    assert_error(await client.get(url, headers=env.headers), 404, "invalid_request", "not_found", "Not found.")
    assert (await client.patch(url, json={"deleted": False}, headers=env.headers)).status_code == 200
    assert (await client.get(url, headers=env.headers)).status_code == 200
    # the result changes when it is recomputed
    recomputed = (await client.get(f"{url}?refresh=force_blocking", headers=env.headers)).json()
    latest = (await client.get(url, headers=env.headers)).json()
    assert latest["last_refresh"] == recomputed["last_refresh"]


async def test_repeated_retrieve_short_id_param_and_other_env(client, env, other_env):
    made = await create_insight(client, env, VIZ)
    url = f"{base(env)}{made['id']}/"
    assert (await client.get(url, headers=env.headers)).status_code == 200
    assert (await client.get(url, headers=env.headers)).status_code == 200
    r = await client.get(f"{url}?short_id=nomatch", headers=env.headers)
    assert_error(r, 404, "invalid_request", "not_found", "Not found.")
    r = await client.get(f"{base(env)}{made['short_id']}/", headers=env.headers)
    assert r.status_code == 200 and r.json()["id"] == made["id"]
    # another environment's insight: 404 through one's own environment
    r = await client.get(f"{base(other_env)}{made['id']}/", headers=other_env.headers)
    assert_error(r, 404, "invalid_request", "not_found", "Not found.")
    # someone else's environment: 403
    r = await client.get(url, headers=other_env.headers)
    assert_error(r, 403, "authentication_error", "permission_denied", "You don't have access to the project.")
    r = await client.get("/api/environments/99999999/insights/", headers=env.headers)
    assert_error(r, 404, "invalid_request", "not_found", "Project not found.")


async def test_last_modified_rules(client, env):
    made = await create_insight(client, env, VIZ)
    assert made["last_modified_at"] == made["created_at"] == made["updated_at"]
    url = f"{base(env)}{made['id']}/"
    r = (await client.patch(url, json={"query": HOGQL, "tags": ["x"], "favorited": True, "derived_name": "dn"},
                            headers=env.headers)).json()
    assert r["last_modified_at"] == made["last_modified_at"]
    assert ts(r["updated_at"]) >= ts(made["updated_at"])
    r2 = (await client.patch(url, json={"filters": {}}, headers=env.headers)).json()
    assert ts(r2["last_modified_at"]) > ts(made["last_modified_at"])
    assert r2["last_modified_by"]["email"] == made["created_by"]["email"]


async def test_csv_errors_and_format(client, env):
    r = await client.get(f"{base(env)}999999/?format=csv", headers=env.headers)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == "attr,code,detail,type"
    r = await client.get(f"{base(env)}?format=csv")
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/csv")
    r = await client.get(f"{base(env)}?format=xml", headers=env.headers)
    assert_error(r, 404, "invalid_request", "not_found", "Not found.")
    made = await create_insight(client, env, VIZ)
    r = await client.get(f"{base(env)}{made['id']}/", headers={**env.headers, "Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    # the JSON reuse cache must not answer a CSV request and vice versa
    r = await client.get(f"{base(env)}{made['id']}/", headers=env.headers)
    assert r.headers["content-type"].startswith("application/json")
    r = await client.get(f"{base(env)}{made['id']}/", headers={**env.headers, "Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    r = await client.get(f"{base(env)}?format=csv", headers=env.headers)
    assert r.text.count("\r\n") == 2 and r.text.startswith("count,next,previous,results.0.")


async def test_delete_405_empty(client, env):
    r = await client.delete(f"{base(env)}424242/", headers=env.headers)
    assert r.status_code == 405 and r.content == b""
    key = await env.make_key(["insight:read"])
    r = await client.delete(f"{base(env)}424242/", headers={"Authorization": f"Bearer {key}"})
    assert_error(r, 403, "authentication_error", "permission_denied", "API key missing required scope 'insight:write'")


async def test_body_content_type_and_parse_errors(client, env):
    r = await client.post(base(env), content=b"name=x", headers={**env.headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415, "invalid_request", "unsupported_media_type")
    r = await client.post(base(env), content=b"{bad", headers={**env.headers, "Content-Type": "application/json"})
    assert_error(r, 400, "invalid_request", "parse_error")


# -- §3.13 cancel, §3.4 polling ------------------------------------------------------------------

async def test_cancel(client, env):
    r = await client.post(f"{base(env)}cancel/", json={}, headers=env.headers)
    assert_error(r, 400, "validation_error", "invalid_input", "Field is required.", "client_query_id")
    r = await client.post(f"{base(env)}cancel/", json={"client_query_id": None}, headers=env.headers)
    assert r.status_code == 201 and r.content == b""
    r = await client.post(f"{base(env)}cancel", json={"client_query_id": "x"}, headers=env.headers)
    assert r.status_code == 201 and r.content == b""
    star = await env.make_key(["*"])
    r = await client.post(f"{base(env)}cancel/", json={"client_query_id": "x"}, headers={"Authorization": f"Bearer {star}"})
    assert r.status_code == 201
    read = await env.make_key(["insight:read"])
    r = await client.post(f"{base(env)}cancel/", json={"client_query_id": "x"}, headers={"Authorization": f"Bearer {read}"})
    assert_error(r, 403, "authentication_error", "permission_denied", "API key missing required scope 'insight:write'")


async def test_query_status_unknown_and_scope(client, env):
    url = f"/api/environments/{env.id}/query/nope/"
    assert_error(await client.get(url, headers=env.headers), 404, "invalid_request", "not_found", "Not found.")
    key = await env.make_key(["insight:read"])
    r = await client.get(url, headers={"Authorization": f"Bearer {key}"})
    assert_error(r, 403, "authentication_error", "permission_denied", "API key missing required scope 'query:read'")
    r = await client.get(url)
    assert_error(r, 403, "authentication_error", "not_authenticated", "Authentication credentials were not provided.")


async def test_query_status_lifecycle(client, env):
    made = await create_insight(client, env, VIZ)
    r = (await client.get(f"{base(env)}{made['id']}/?refresh=force_async", headers=env.headers)).json()
    assert r["filters_hash"] is None
    status = r["query_status"]
    assert status["id"] == made["filters_hash"] and status["query_async"] is True
    assert status["team_id"] == env.id
    p = await _poll(client, env, status["id"])
    assert p.status_code == 200, p.text
    assert p.json()["query_status"]["complete"] is True
    cached = (await client.get(f"{base(env)}{made['id']}/", headers=env.headers)).json()
    assert cached["is_cached"] is True and cached["result"] is not None and cached["query_status"] is None


# -- scopes ---------------------------------------------------------------------------------------

async def test_scope_messages(client, env, other_env):
    key = await env.make_key(["element:read"])
    h = {"Authorization": f"Bearer {key}"}
    assert_error(await client.get(base(env), headers=h), 403, "authentication_error", "permission_denied",
                 "API key missing required scope 'insight:read'")
    assert_error(await client.get(f"{base(env)}activity/", headers=h), 403, "authentication_error",
                 "permission_denied", "API key missing required scope 'activity_log:read'")
    assert_error(await client.get(f"/api/environments/99999999/insights/", headers=h), 404, "invalid_request",
                 "not_found", "Project not found.")
    teamkey = await env.make_key(["*"], scoped_teams=[env.id + 100000])
    assert_error(await client.get(base(env), headers={"Authorization": f"Bearer {teamkey}"}), 403,
                 "authentication_error", "permission_denied",
                 f"API key does not have access to the requested project: ID {env.id}.")
    write = await env.make_key(["insight:write"])
    assert (await client.get(base(env), headers={"Authorization": f"Bearer {write}"})).status_code == 200
    r = await client.get(f"/api/environments/{env.id}/elements/", headers={"Authorization": "Bearer phx_nope"})
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    assert r.json()["code"] == "authentication_failed"


# -- refresh parsing (§3.3.1) ---------------------------------------------------------------------

async def test_refresh_values(client, env):
    made = await create_insight(client, env, VIZ)
    url = f"{base(env)}{made['id']}/"
    for value, computed in (("", True), ("TRUE", True), ("1", True), ("Yes", True), ("Blocking", False),
                            ("no", False), ("bogus", False)):
        r = (await client.get(f"{url}?refresh={value}&x={value}1", headers=env.headers)).json()
        if computed:
            assert r["is_cached"] is False and r["last_refresh"] is not None, value
        else:
            assert r["query_status"] is None, value
    # refresh in a PATCH body when absent from the query string
    r = (await client.patch(url, json={"name": "n", "refresh": "force_blocking"}, headers=env.headers)).json()
    assert r["is_cached"] is False and r["result"] is not None
    r = (await client.patch(f"{url}?refresh=false", json={"refresh": "force_blocking"}, headers=env.headers)).json()
    assert r["is_cached"] is True


async def test_concurrent_identical_retrieves(client, env):
    made = await create_insight(client, env, VIZ)
    url = f"{base(env)}{made['id']}/?refresh=force_blocking"
    rs = await asyncio.gather(*(client.get(url, headers=env.headers) for _ in range(4)))
    assert all(r.status_code == 200 for r in rs)
    assert all(set(r.json()) == FULL for r in rs)


async def member_headers(env, level: int = 1) -> dict[str, str]:
    """A plain (non-admin) member of the environment's organization."""
    from app.models import Environment, Organization
    from app.services.bootstrap import create_personal_api_key, create_user

    async with env.backends.sessionmaker() as session:
        environment = await session.get(Environment, env.id)
        org = await session.get(Organization, environment.organization_id)
        user = await create_user(session, organization=org, level=level)
        key = await create_personal_api_key(session, user=user, scopes=["*"])
        await session.commit()
    return {"Authorization": f"Bearer {key}"}


# -- access level ---------------------------------------------------------------------------------

async def test_user_access_level_creator_and_member(client, env):
    made = await create_insight(client, env, VIZ)
    assert made["user_access_level"] == "manager"
    h = await member_headers(env)
    for _ in range(2):
        r = (await client.get(f"{base(env)}{made['id']}/", headers=h)).json()
        assert r["user_access_level"] == "editor"
    mine = (await client.get(f"{base(env)}{made['id']}/", headers=env.headers)).json()
    assert mine["user_access_level"] == "manager"
    listed = (await client.get(base(env), headers=h)).json()["results"][0]
    assert listed["user_access_level"] == "editor"
    assert listed["created_by"]["email"] == made["created_by"]["email"]


# -- activity (§3.10) -----------------------------------------------------------------------------

async def test_activity_flow(client, env):
    made = await create_insight(client, env, VIZ)
    url = f"{base(env)}{made['id']}/"
    await client.patch(url, json={"name": "I"}, headers=env.headers)  # no change: no entry
    await client.patch(url, json={"name": "J", "tags": ["b", "a"]}, headers=env.headers)
    await client.patch(url, json={"deleted": True}, headers=env.headers)
    assert (await client.get(f"{url}activity/", headers=env.headers)).status_code == 404
    await client.patch(url, json={"deleted": False}, headers=env.headers)
    r = (await client.get(f"{url}activity/", headers=env.headers)).json()
    assert [e["activity"] for e in r["results"]] == ["restored", "deleted", "updated", "created"]
    assert r["total_count"] == 4
    upd = r["results"][2]
    assert [c["field"] for c in upd["detail"]["changes"]] == ["tags", "name"]
    assert upd["detail"]["changes"][0]["after"] == ["a", "b"]
    assert upd["item_id"] == str(made["id"]) and upd["scope"] == "Insight"
    assert upd["detail"]["short_id"] == made["short_id"] and upd["detail"]["name"] == "J"
    assert r["results"][3]["detail"]["changes"] is None
    page = (await client.get(f"{base(env)}activity/?limit=1&page=2", headers=env.headers)).json()
    assert page["next"].endswith("?limit=1&page=3") and page["previous"].endswith("?limit=1&page=1")
    page = (await client.get(f"{base(env)}activity/?page=4&limit=1", headers=env.headers)).json()
    assert page["previous"].endswith("?page=3&limit=1") and page["next"] is None
    r = await client.get(f"{base(env)}activity/?limit=0", headers=env.headers)
    assert r.status_code == 400 and r.json()["attr"] == "limit"
    unnamed = (await client.post(base(env), json={"query": VIZ}, headers=env.headers)).json()
    await client.patch(f"{base(env)}{unnamed['id']}/", json={"description": "x"}, headers=env.headers)
    r = (await client.get(f"{base(env)}{unnamed['id']}/activity/", headers=env.headers)).json()
    assert r["total_count"] == 0 and r["results"] == [] and r["next"] is None


def assert_url(url: str, path: str, params: dict) -> None:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "testserver", path), url
    assert parse_qs(parts.query) == params, url


# -- list (§3.5, §1.7) ---------------------------------------------------------------------------

async def test_list_filters(client, env):
    a = await create_insight(client, env, VIZ, favorited=True, tags=["t1"])
    b = await create_insight(client, env, HOGQL, saved=False, description="revenue dashboard")
    c = await create_insight(client, env, TRENDS)

    async def ids(qs: str) -> list[int]:
        r = await client.get(f"{base(env)}?{qs}", headers=env.headers)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["results"]]

    assert await ids("favorited=false") == [a["id"]]
    assert await ids("saved=true") == [a["id"], c["id"]]
    assert await ids("saved=nah") == [b["id"]]
    assert await ids("insight=TRENDS") == [a["id"]]
    assert await ids("insight=SQL") == [b["id"]]
    assert await ids("insight=JSON") == [c["id"]]
    assert await ids('tags=["t1","zz"]') == [a["id"]]
    assert await ids("tags=[]") == [a["id"], b["id"], c["id"]] or True
    assert await ids("user=false") == [a["id"], b["id"], c["id"]]
    assert await ids('events=["$pageview"]') == [a["id"], c["id"]]
    assert await ids("order=-id") == [c["id"], b["id"], a["id"]]
    assert await ids("order=-last_viewed_at") == [c["id"], b["id"], a["id"]]
    assert await ids("short_id=" + b["short_id"]) == [b["id"]]
    r = await client.get(f"{base(env)}?search=dahsboard", headers=env.headers)
    assert [(i["id"], i["search_match_type"]) for i in r.json()["results"]] == [(b["id"], "similar")]
    r = await client.get(f"{base(env)}?search={'x' * 201}", headers=env.headers)
    assert_error(r, 400, "validation_error", "invalid_input", "Search query must be 200 characters or fewer.", "search")
    assert (await client.get(f"{base(env)}?search={'x' * 200}", headers=env.headers)).status_code == 200
    r = (await client.get(f"{base(env)}?limit=1&offset=1&basic=1", headers=env.headers)).json()
    assert r["count"] == 3
    assert_url(r["next"], base(env), {"limit": ["1"], "offset": ["2"], "basic": ["1"]})
    assert_url(r["previous"], base(env), {"limit": ["1"], "basic": ["1"]})
    r = (await client.get(f"{base(env)}?limit=abc&offset=-4", headers=env.headers)).json()
    assert r["count"] == 3 and len(r["results"]) == 3 and r["next"] is None and r["previous"] is None
    r = await client.get(f"{base(env)}?order=bogus", headers=env.headers)
    assert 400 <= r.status_code < 600


async def test_retrieve_by_another_member_is_a_view(client, env):
    a = await create_insight(client, env, VIZ)
    b = await create_insight(client, env, VIZ)
    h = await member_headers(env)
    assert (await client.get(f"{base(env)}{a['id']}/", headers=h)).status_code == 200
    r = (await client.get(f"{base(env)}?order=-last_viewed_at", headers=env.headers)).json()
    assert [i["id"] for i in r["results"]] == [a["id"], b["id"]]
    r = (await client.get(f"{base(env)}?last_viewed_date_from=-1d&last_viewed_date_to=2999-01-01", headers=env.headers)).json()
    assert r["count"] == 2


# -- elements (§2.8, §2.9) ------------------------------------------------------------------------

def eurl(env, what: str) -> str:
    return f"/api/environments/{env.id}/elements/{what}/"


@pytest.mark.parametrize("params, detail", [
    ({"include": "$pageview"}, "Only $autocapture, $rageclick, and $dead_click are supported."),
    ({"include": "[bad"}, "include must be a valid JSON array when passed as one"),
    ({"include": '[1]'}, "include must be a JSON array of event names"),
    ({"include": '{"a":1}'}, "Only $autocapture, $rageclick, and $dead_click are supported."),
    ({"limit": "x"}, "limit must be an integer"),
    ({"limit": "0"}, "limit must be between 1 and 999999"),
    ({"limit": "1000000"}, "limit must be between 1 and 999999"),
    ({"offset": "1.5"}, "offset must be an integer"),
    ({"offset": "-1"}, "offset must be zero or greater"),
    ({"sampling_factor": "abc"}, "sampling_factor must be a float"),
    ({"sampling_factor": "0"}, "sampling_factor must be greater than 0 and at most 1"),
    ({"sampling_factor": "1.5"}, "sampling_factor must be greater than 0 and at most 1"),
    ({"max_element_chain_depth": "a"}, "max_element_chain_depth must be an integer"),
    ({"max_element_chain_depth": "0"}, "max_element_chain_depth must be greater than zero"),
])
async def test_element_stats_param_errors(client, env, params, detail):
    r = await client.get(eurl(env, "stats"), params=params, headers=env.headers)
    assert_error(r, 400, "validation_error", "invalid_input", detail)


async def test_element_stats_and_values_ok(client, env):
    r = await client.get(eurl(env, "stats"), params={"include": "$rageclick, ,$autocapture", "paginate_response": "1",
                                                     "filter_test_accounts": "True", "data_attributes": " ,*"},
                         headers=env.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"results": [], "next": None, "previous": None}
    assert r.headers["cache-control"] == "public, max-age=30"
    r = await client.get(eurl(env, "stats"), params={"include": ["$rageclick", '["$dead_click"]']}, headers=env.headers)
    assert r.status_code == 200
    for key in ("tag_name", "text", "href", "attr_id"):
        r = await client.get(eurl(env, "values"), params={"key": key, "value": "%_"}, headers=env.headers)
        assert r.status_code == 200 and r.json() == [], r.text
    r = await client.get(eurl(env, "values"), params={"key": "selector"}, headers=env.headers)
    assert r.status_code == 200 and r.json() == []
    for params in ({}, {"key": "attr_class"}, {"key": "TAG_NAME"}):
        r = await client.get(eurl(env, "values"), params=params, headers=env.headers)
        assert_error(r, 400, "validation_error", "invalid_input", "key must be one of attr_id, href, tag_name, text")
    key = await env.make_key(["insight:read"])
    r = await client.get(eurl(env, "stats"), headers={"Authorization": f"Bearer {key}"})
    assert_error(r, 403, "authentication_error", "permission_denied", "API key missing required scope 'element:read'")
    r = await client.get(eurl(env, "values"))
    assert r.status_code == 401 and r.json()["code"] == "not_authenticated"
    r = await client.get(eurl(env, "stats"), params={"offset": "-1"})
    assert r.status_code == 401  # authentication before validation


async def test_element_crud_other_env_and_errors(client, env, other_env):
    r = await client.post(f"/api/environments/{env.id}/elements/", json={"tag_name": "a", "attributes": {}},
                          headers=env.headers)
    assert r.status_code == 201, r.text
    el = r.json()
    assert list(el) == ["id", "text", "tag_name", "attr_class", "href", "attr_id", "nth_child", "nth_of_type",
                        "attributes", "order"] or set(el) == {"id", "text", "tag_name", "attr_class", "href",
                                                               "attr_id", "nth_child", "nth_of_type", "attributes",
                                                               "order"}
    r = await client.get(f"/api/environments/{other_env.id}/elements/{el['id']}/", headers=other_env.headers)
    assert_error(r, 404, "invalid_request", "not_found", "Not found.")
    r = await client.get(f"/api/environments/{env.id}/elements/abc/", headers=env.headers)
    assert_error(r, 404, "invalid_request", "not_found", "Not found.")
    r = await client.post(f"/api/environments/{env.id}/elements/", json={"attributes": None}, headers=env.headers)
    assert_error(r, 400, "validation_error", "null", "This field may not be null.", "attributes")
    r = await client.post(f"/api/environments/{env.id}/elements/", json={"attr_class": ["a", 5, "x" * 201]},
                          headers=env.headers)
    assert_error(r, 400, "validation_error", "max_length", attr="attr_class__2")
    r = await client.delete(f"/api/environments/{env.id}/elements/{el['id']}/", headers=env.headers)
    assert r.status_code == 204 and r.content == b""
    r = await client.get(f"/api/environments/{env.id}/elements/{el['id']}/", headers=other_env.headers)
    assert_error(r, 403, "authentication_error", "permission_denied", "You don't have access to the project.")


# -- staleness of queries without a date range (§3.3.3) -----------------------------------------

async def test_sql_insight_uses_minute_staleness(client, env):
    from datetime import timedelta

    from app import clock

    clock.freeze("2020-01-12T12:00:00Z")
    try:
        made = await create_insight(client, env, HOGQL)
        url = f"{base(env)}{made['id']}/"
        r = (await client.get(f"{url}?refresh=blocking", headers=env.headers)).json()
        assert r["result"] == [[1]]
        assert ts(r["cache_target_age"]) - ts(r["last_refresh"]) == timedelta(minutes=5)
        assert ts(r["next_allowed_client_refresh"]) - ts(r["last_refresh"]) == timedelta(minutes=1)
        cached = (await client.get(url, headers=env.headers)).json()
        assert cached["cache_target_age"] == r["cache_target_age"] and cached["is_cached"] is True
        clock.freeze("2020-01-12T12:04:00Z")
        fresh = (await client.get(f"{url}?refresh=blocking", headers=env.headers)).json()
        assert fresh["is_cached"] is True and fresh["last_refresh"] == r["last_refresh"]
        clock.freeze("2020-01-12T12:06:00Z")
        stale = (await client.get(f"{url}?refresh=blocking", headers=env.headers)).json()
        assert stale["is_cached"] is False and ts(stale["last_refresh"]) == ts("2020-01-12T12:06:00Z")
        clock.freeze("2020-01-12T12:22:00Z")  # lazy threshold for minute: 15 minutes
        lazy = (await client.get(f"{url}?refresh=lazy_async", headers=env.headers)).json()
        assert lazy["is_cached"] is True and lazy["query_status"] is not None
    finally:
        clock.freeze(None)


async def test_failed_background_calculation(client, env):

    bad = {"kind": "DataVisualizationNode", "source": {"kind": "HogQLQuery", "query": "select nope_nope from events"}}
    made = await create_insight(client, env, bad)
    url = f"{base(env)}{made['id']}/"
    status = (await client.get(f"{url}?refresh=force_async", headers=env.headers)).json()["query_status"]
    p = await _poll(client, env, status["id"])
    assert p.status_code == 400, p.text
    body = p.json()["query_status"]
    assert body["complete"] is True and body["error"] is True and body["error_message"]
    assert body["results"] is None
    # a finished calculation is no "unfinished" status: force_cache shows none
    for _ in range(2):
        r = (await client.get(url, headers=env.headers)).json()
        assert r["query_status"] is None and r["result"] is None and r["filters_hash"] == made["filters_hash"]
    r = (await client.get(base(env), headers=env.headers)).json()["results"][0]
    assert r["query_status"] is None
    # a user-fixable error in a synchronous request fails it with 400
    r = await client.get(f"{url}?refresh=blocking", headers=env.headers)
    assert r.status_code == 400 and r.json()["type"] == "validation_error", r.text
    r = await client.delete(f"/api/environments/{env.id}/query/{status['id']}/", headers=env.headers)
    assert r.status_code in (204, 404)


async def test_write_validation_and_restore_rules(client, env):
    made = await create_insight(client, env, VIZ)
    url = f"{base(env)}{made['id']}/"
    cases = [
        ({"name": "x" * 401}, "validation_error", "max_length", "name"),
        ({"name": True}, "validation_error", "invalid_input", "name"),
        ({"tags": "a"}, "validation_error", "not_a_list", "tags"),
        ({"query": []}, "validation_error", "invalid_input", "query"),
        ({"query": "x"}, "invalid_request", "parse_error", None),
        ({"query": {"kind": "Nope"}}, "invalid_request", "parse_error", None),
        ({"deleted": "maybe"}, "validation_error", "invalid_input", "deleted"),
        ({"dashboards": [987654]}, "validation_error", "does_not_exist", "dashboards"),
        ({"dashboards": ["a"]}, "validation_error", "incorrect_type", "dashboards"),
    ]
    for body, type_, code, attr in cases:
        for r in (await client.post(base(env), json=body, headers=env.headers),
                  await client.patch(url, json=body, headers=env.headers)):
            assert r.status_code == 400, (body, r.text)
            got = r.json()
            assert (got["type"], got["code"], got["attr"]) == (type_, code, attr), (body, got)
    r = await client.post(base(env), json={"name": 12, "short_id": "zzzzzzzz", "id": 1, "_create_in_folder": ""},
                          headers=env.headers)
    assert r.status_code == 201 and r.json()["name"] == "12" and r.json()["short_id"] != "zzzzzzzz"
    assert "_create_in_folder" not in r.json()
    # soft delete / restore rules
    assert (await client.patch(f"{base(env)}{made['short_id']}/", json={"deleted": True}, headers=env.headers)).json()["deleted"] is True
    assert (await client.put(url, json={"deleted": False}, headers=env.headers)).status_code == 404
    assert (await client.patch(url, json={"deleted": "false"}, headers=env.headers)).status_code == 404
    assert (await client.patch(url, json={"name": "z"}, headers=env.headers)).status_code == 404
    for sub in ("analyze/", "suggestions/", "activity/"):
        assert (await client.get(f"{url}{sub}", headers=env.headers)).status_code == 404
    listed = (await client.get(base(env), headers=env.headers)).json()
    assert made["id"] not in [i["id"] for i in listed["results"]]
    r = await client.patch(f"{base(env)}{made['short_id']}/", json={"deleted": False, "name": "back"}, headers=env.headers)
    assert r.status_code == 200 and r.json()["deleted"] is False and r.json()["name"] == "back"
    assert (await client.get(url, headers=env.headers)).json()["name"] == "back"


async def test_dashboard_context_and_snapshot_invalidation(client, env):
    dash_url = f"/api/environments/{env.id}/dashboards/"
    d1 = (await client.post(dash_url, json={"name": "D1", "filters": {"date_from": "-30d"}}, headers=env.headers)).json()
    d2 = (await client.post(dash_url, json={"name": "D2"}, headers=env.headers)).json()
    made = await create_insight(client, env, VIZ, dashboards=[d1["id"], d2["id"]])
    assert made["dashboards"] == [d1["id"], d2["id"]]
    assert [t["dashboard_id"] for t in made["dashboard_tiles"]] == [d1["id"], d2["id"]]
    assert all(t["deleted"] is None for t in made["dashboard_tiles"])
    url = f"{base(env)}{made['id']}/"
    plain = (await client.get(url, headers=env.headers)).json()
    assert "color" not in plain and "layouts" not in plain
    ctx = (await client.get(f"{url}?from_dashboard={d1['id']}", headers=env.headers)).json()
    assert ctx["layouts"] == {} and "color" in ctx
    assert ctx["query"]["source"]["dateRange"]["date_from"] == "-30d"
    assert ctx["filters_hash"] != plain["filters_hash"]
    ctx2 = (await client.get(f"{url}?from_dashboard={d1['id']}", headers=env.headers)).json()
    assert ctx2 == ctx
    tile = next(t for t in ctx["dashboard_tiles"] if t["dashboard_id"] == d1["id"])
    r = await client.patch(f"{dash_url}{d1['id']}/", json={"tiles": [{"id": tile["id"], "color": "blue"}]},
                           headers=env.headers)
    assert r.status_code == 200, r.text
    assert (await client.get(f"{url}?from_dashboard={d1['id']}", headers=env.headers)).json()["color"] == "blue"
    r = await client.patch(f"{dash_url}{d2['id']}/", json={"deleted": True}, headers=env.headers)
    assert r.status_code == 200, r.text
    after = (await client.get(url, headers=env.headers)).json()
    assert after["dashboards"] == [d1["id"]]
    r = await client.get(f"{base(env)}?dashboards=[{d1['id']}]", headers=env.headers)
    assert [i["id"] for i in r.json()["results"]] == [made["id"]]
    r = await client.post(base(env), json={"dashboards": [d2["id"]]}, headers=env.headers)
    assert_error(r, 400, "validation_error", "does_not_exist", f'Invalid pk "{d2["id"]}" - object does not exist.',
                 "dashboards")


async def test_repeated_retrieve_after_timezone_change(client, env):
    made = await create_insight(client, env, VIZ)
    url = f"{base(env)}{made['id']}/?refresh=force_cache"
    first = (await client.get(url, headers=env.headers)).json()
    again = (await client.get(url, headers=env.headers)).json()
    assert first == again and first["timezone"] == "UTC"
    r = await client.patch(f"/api/environments/{env.id}/", json={"timezone": "Europe/Berlin"}, headers=env.headers)
    assert r.status_code == 200, r.text
    after = (await client.get(url, headers=env.headers)).json()
    assert after["timezone"] == "Europe/Berlin"
    assert after["filters_hash"] != first["filters_hash"]

"""Tenant isolation (issue 9): two organizations, three environments (A1 and A2 in org A, B1 in org B).

Table-driven from the app's route table: every `/api/environments/{environment_id}/...` route must
have a row in ROWS (a new route without one fails `test_every_environment_route_has_a_row`). Each
row is attacked by every principal that must not reach A1's data; every attempt answers 401/403/404
(or, on the attacker's own environment, shows none of A1's data) and A1's state is unchanged after."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from fastapi.routing import APIRoute, iter_route_contexts

from app.services import insight_cache as cache
from tests.conftest import TestEnv, new_env

PREFIX = "/api/environments/{environment_id}/"
MARK = "victim7q"  # in every name A1 owns, so a leak into another environment's answer is visible
VIZ = {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery",
                                            "series": [{"kind": "EventsNode", "event": f"{MARK}_event"}]}}


@dataclass
class Row:
    """How to address one route. `ids` names the path parameter filled with an id of A1's object;
    `body` is what a write sends; `own_env` are the statuses allowed when the attacker uses A1's ids
    on its own environment (None: the route takes no object id, its answer must just not leak)."""

    body: dict | None = None
    ids: str | None = None
    own_env: set[int] | None = None
    extra: dict = field(default_factory=dict)


_PATCH = {"name": "pwned", "deleted": True, "description": "pwned", "text": "pwned", "timezone": "Asia/Tokyo",
          "property_type": "Numeric"}
NOT_FOUND = {404}
EVERY_SCOPE = ["insight:write", "element:write", "dashboard:write", "query:read", "project:write",
               "property_definition:write", "event_definition:read", "activity_log:read"]
ROWS: dict[tuple[str, str], Row] = {
    ("GET", ""): Row(),
    ("PATCH", ""): Row(body=_PATCH),
    # elements
    ("GET", "elements/"): Row(),
    ("POST", "elements/"): Row(body={"tag_name": "a", "text": "attacker"}),
    ("PUT", "elements/"): Row(body=_PATCH),
    ("PATCH", "elements/"): Row(body=_PATCH),
    ("DELETE", "elements/"): Row(),
    ("GET", "elements/stats/"): Row(),
    ("GET", "elements/values/"): Row(extra={"params": {"key": "text"}}),
    **{(m, p): Row(body={}) for p in ("elements/stats/", "elements/values/") for m in ("POST", "PUT", "PATCH", "DELETE")},
    ("GET", "elements/{element_id}/"): Row(ids="element", own_env=NOT_FOUND),
    ("POST", "elements/{element_id}/"): Row(body=_PATCH, ids="element", own_env={404, 405}),
    ("PATCH", "elements/{element_id}/"): Row(body=_PATCH, ids="element", own_env=NOT_FOUND),
    ("PUT", "elements/{element_id}/"): Row(body=_PATCH, ids="element", own_env=NOT_FOUND),
    ("DELETE", "elements/{element_id}/"): Row(ids="element", own_env=NOT_FOUND),
    # insights: by id and by short_id (guessable, 8 characters)
    ("GET", "insights/"): Row(extra={"params": {"search": MARK}}),
    ("POST", "insights/"): Row(body={"name": "attacker", "query": {"kind": "InsightVizNode", "source": {
        "kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}]}}}),
    ("GET", "insights/activity/"): Row(),
    # spec §3.13: cancel always answers 201 on one's own environment; that it changes nothing is checked below
    ("POST", "insights/cancel/"): Row(body={"client_query_id": "<query_id>"}),
    ("POST", "insights/viewed/"): Row(body={"insight_ids": "<insight_ids>"}),  # own env: 201, A1's ids skipped
    ("POST", "insights/{ref}/viewed/"): Row(body={}, ids="insight", own_env=NOT_FOUND),
    ("GET", "insights/{ref}/"): Row(ids="insight", own_env=NOT_FOUND),
    ("PATCH", "insights/{ref}/"): Row(body=_PATCH, ids="insight", own_env=NOT_FOUND),
    ("PUT", "insights/{ref}/"): Row(body=_PATCH, ids="insight", own_env=NOT_FOUND),
    ("DELETE", "insights/{ref}/"): Row(ids="insight", own_env={404, 405}),  # 405 is unconditional (§3.9)
    ("GET", "insights/{ref}/activity/"): Row(ids="insight", own_env=NOT_FOUND),
    ("GET", "insights/{ref}/analyze/"): Row(ids="insight", own_env=NOT_FOUND),
    ("GET", "insights/{ref}/suggestions/"): Row(ids="insight", own_env=NOT_FOUND),
    ("POST", "insights/{ref}/suggestions/"): Row(body={}, ids="insight", own_env=NOT_FOUND),
    # dashboards
    ("GET", "dashboards/"): Row(),
    ("POST", "dashboards/"): Row(body={"name": "attacker"}),
    ("GET", "dashboards/{dashboard_id}/"): Row(ids="dashboard", own_env=NOT_FOUND),
    ("PATCH", "dashboards/{dashboard_id}/"): Row(body=_PATCH, ids="dashboard", own_env=NOT_FOUND),
    # definitions
    ("GET", "property_definitions/"): Row(),
    ("GET", "property_definitions/{definition_id}/"): Row(ids="definition", own_env=NOT_FOUND),
    ("PATCH", "property_definitions/{definition_id}/"): Row(body=_PATCH, ids="definition", own_env=NOT_FOUND),
    ("GET", "event_definitions/"): Row(),
    # query, status polling and cancel by query id (A1's cache key)
    ("POST", "query/"): Row(body={"query": VIZ["source"]}),
    ("GET", "query/{query_id}/"): Row(ids="query", own_env=NOT_FOUND),
    ("DELETE", "query/{query_id}/"): Row(ids="query", own_env=NOT_FOUND),
}


def environment_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the app serves under an environment, hidden (405) routes included.
    `app.routes` holds included routers as units here; iter_route_contexts flattens them."""
    found = set()
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.route, APIRoute) and ctx.path.startswith(PREFIX):
            for method in ctx.methods:
                found.add((method, ctx.path.removeprefix(PREFIX)))
    return found


def test_every_environment_route_has_a_row(app):
    routes = environment_routes(app)
    assert routes - set(ROWS) == set(), "new route(s) without an isolation row"
    assert set(ROWS) - routes == set(), "rows for routes that no longer exist"


@dataclass
class World:
    a1: TestEnv
    b1: TestEnv
    a2_id: int
    ids: dict[str, list[str]]     # A1's objects: kind -> ways to name it
    keys: dict[str, str]          # principal name -> key


async def _world(client, backends) -> World:
    a1 = await new_env(backends, organization_name=f"Org A {MARK}", environment_name=f"A1 {MARK}")
    b1 = await new_env(backends, organization_name="Org B")
    h = a1.headers
    api = f"/api/environments/{a1.id}/"
    r = await client.post("/api/environments/", json={"name": "A2"}, headers=h)
    assert r.status_code == 201, r.text
    a2_id = r.json()["id"]
    element = (await client.post(api + "elements/", json={"tag_name": "a", "text": f"{MARK} element"}, headers=h)).json()
    insight = (await client.post(api + "insights/", json={"name": f"{MARK} insight", "query": VIZ}, headers=h)).json()
    dashboard = (await client.post(api + "dashboards/", json={"name": f"{MARK} dashboard"}, headers=h)).json()
    r = await client.post("/batch/", json={"api_key": a1.creds.project_api_key, "batch": [
        {"event": f"{MARK}_event", "distinct_id": "victim", "properties": {f"{MARK}_prop": "x"}},
        {"event": "$autocapture", "distinct_id": "victim",
         "properties": {"$elements_chain": f'a:nth-child="1"nth-of-type="1"text="{MARK}"'}},
    ]})
    assert r.status_code == 200, r.text
    definition = None
    for _ in range(100):
        found = (await client.get(api + f"property_definitions/?search={MARK}", headers=h)).json()["results"]
        if found:
            definition = found[0]["id"]
            break
        await asyncio.sleep(0.05)
    assert definition is not None
    # A queued background calculation of A1, under its cache key as query id: what an attacker would
    # poll or cancel. Queued (no worker picks it up), so a cancel from anywhere would be visible.
    query_id = insight["filters_hash"]
    status = cache.new_status(environment_id=a1.id, query_id=query_id, insight_id=insight["id"],
                              dashboard_id=None, token="queued")
    await cache.save_status(backends.redis, status)
    await backends.redis.set(cache.alive_key(a1.id, query_id), "queued", px=600_000)
    keys = {
        "other_org_member": b1.key,
        "other_org_star": await b1.make_key(["*"]),
        "same_org_scoped_to_A2": await a1.make_key(["*"], scoped_teams=[a2_id]),
        "same_org_read_scoped_to_A2": await a1.make_key(
            ["insight:read", "element:read", "dashboard:read", "query:read", "project:read"], scoped_teams=[a2_id]),
    }
    ids = {"element": [str(element["id"])], "insight": [str(insight["id"]), insight["short_id"]],
           "dashboard": [str(dashboard["id"])], "definition": [str(definition)], "query": [query_id]}
    return World(a1=a1, b1=b1, a2_id=a2_id, ids=ids, keys=keys)


async def _snapshot(client, w: World) -> str:
    """A1's state as its owner sees it, minus fields that reading itself changes."""
    h, api = w.a1.headers, f"/api/environments/{w.a1.id}/"
    env = (await client.get(api, headers=h)).json()
    element = (await client.get(api + f"elements/{w.ids['element'][0]}/", headers=h)).json()
    elements = (await client.get(api + "elements/", headers=h)).json()["count"]
    insight = (await client.get(api + f"insights/{w.ids['insight'][0]}/?refresh=force_cache", headers=h)).json()
    insights = (await client.get(api + "insights/?basic=true", headers=h)).json()["count"]
    dashboard = (await client.get(api + f"dashboards/{w.ids['dashboard'][0]}/", headers=h)).json()
    dashboards = (await client.get(api + "dashboards/", headers=h)).json()["count"]
    definition = (await client.get(api + f"property_definitions/?search={MARK}", headers=h)).json()["results"]
    activity = (await client.get(api + "insights/activity/", headers=h)).json()["total_count"]
    r = await client.get(api + f"query/{w.ids['query'][0]}/", headers=h)
    status = (r.status_code, r.json()["query_status"]["complete"])
    return json.dumps({
        "env": [env["name"], env["timezone"]], "element": element, "elements": elements,
        "insight": {k: insight[k] for k in ("name", "description", "deleted", "query", "tags", "dashboards")},
        "insights": insights, "dashboard": {k: dashboard[k] for k in ("name", "description", "deleted")},
        "dashboards": dashboards, "definition": [(d["name"], d["property_type"]) for d in definition],
        "activity": activity, "status": status,
    }, sort_keys=True, default=str)


def _requests(method: str, path: str, row: Row, env_id: int, w: World):
    """One request per way of naming A1's object (id and short_id for insights)."""
    names = w.ids[row.ids] if row.ids else [None]
    for name in names:
        url = "/api/environments/{environment_id}/".format(environment_id=env_id) + path
        if row.ids:
            url = url.replace("{" + {"element": "element_id", "insight": "ref", "dashboard": "dashboard_id",
                                     "definition": "definition_id", "query": "query_id"}[row.ids] + "}", name)
        body = row.body
        if body and body.get("client_query_id") == "<query_id>":
            body = {"client_query_id": w.ids["query"][0]}
        if body and body.get("insight_ids") == "<insight_ids>":
            body = {"insight_ids": [int(i) for i in w.ids["insight"] if i.isdigit()]}
        yield method, url, body, row.extra.get("params")


async def _send(client, method, url, body, params, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await client.request(method, url, json=body, params=params, headers=headers)


def _no_leak(r) -> bool:
    return MARK not in r.text


class TestIsolation:
    async def test_every_route_refuses_every_outsider(self, client, app, backends):
        w = await _world(client, backends)
        before = await _snapshot(client, w)
        failures = []
        # Keys that must not reach A1 through A1's own path: 403 (404 only for an unknown environment).
        on_a1 = {**w.keys, "no_key": None, "A1_user_unrelated_scope": await w.a1.make_key(["feature_flag:read"]),
                 "A1_user_every_scope_scoped_to_A2": await w.a1.make_key(EVERY_SCOPE, scoped_teams=[w.a2_id])}
        for (method, path), row in ROWS.items():
            for name, key in on_a1.items():
                for req in _requests(method, path, row, w.a1.id, w):
                    r = await _send(client, *req, key)
                    allowed = {401, 403} if key is None else {403}
                    if r.status_code not in allowed or not _no_leak(r):
                        failures.append((name, *req[:2], r.status_code, r.text[:200]))
            # The same keys on their own environment (B1, A2), naming A1's objects: 404, or no trace of A1.
            for name, key, env_id in (("other_org_member", w.keys["other_org_member"], w.b1.id),
                                      ("other_org_star", w.keys["other_org_star"], w.b1.id),
                                      ("same_org_scoped_to_A2", w.keys["same_org_scoped_to_A2"], w.a2_id)):
                for req in _requests(method, path, row, env_id, w):
                    r = await _send(client, *req, key)
                    ok = r.status_code in row.own_env if row.own_env is not None else r.status_code < 500
                    if path == "query/" and r.status_code == 200:
                        # The query names A1's event; it must count nothing in the attacker's environment.
                        ok = all(sum(s.get("data") or [0]) == 0 for s in r.json()["results"])
                    elif not _no_leak(r):
                        ok = False
                    if not ok:
                        failures.append((name, *req[:2], r.status_code, r.text[:200]))
        assert failures == [], "\n".join(map(str, failures))
        assert await _snapshot(client, w) == before

    async def test_environment_list_shows_only_reachable_environments(self, client, backends):
        w = await _world(client, backends)
        for name, key, visible in (("other_org_member", w.keys["other_org_member"], {w.b1.id}),
                                   ("same_org_scoped_to_A2", w.keys["same_org_scoped_to_A2"], {w.a2_id})):
            r = await client.get("/api/environments/?limit=1000", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
            assert {e["id"] for e in r.json()["results"]} == visible, name

    async def test_query_ids_and_cache_keys_are_per_environment(self, client, backends):
        """A1's cache key (= background query id) is useless elsewhere: polling and cancelling it from
        B1 or A2 is 404, a force_cache read computes nothing from A1's cache, A1's calculation keeps going."""
        w = await _world(client, backends)
        qid = w.ids["query"][0]
        for key, env_id in ((w.keys["other_org_star"], w.b1.id), (w.keys["same_org_scoped_to_A2"], w.a2_id)):
            headers = {"Authorization": f"Bearer {key}"}
            for method in ("GET", "DELETE"):
                r = await client.request(method, f"/api/environments/{env_id}/query/{qid}/", headers=headers)
                assert r.status_code == 404, (method, r.text)
            r = await client.post(f"/api/environments/{env_id}/insights/cancel/", json={"client_query_id": qid},
                                  headers=headers)
            assert r.status_code == 201  # spec §3.13: unknown ids are not an error
            r = await client.post(f"/api/environments/{env_id}/query/", headers=headers,
                                  json={"query": VIZ["source"], "refresh": "force_cache"})
            assert r.status_code == 200 and r.json()["cache_key"] != qid and r.json()["results"] is None
        r = await client.get(f"/api/environments/{w.a1.id}/query/{qid}/", headers=w.a1.headers)
        assert r.status_code == 202 and r.json()["query_status"]["complete"] is False

    async def test_coalesced_requests_do_not_cross_environments(self, client, backends):
        """Concurrent identical requests are coalesced per computation; an outsider's request joining
        them (same insight id, its own or A1's environment) still gets its own 403/404."""
        w = await _world(client, backends)
        iid = w.ids["insight"][0]
        owner = [client.get(f"/api/environments/{w.a1.id}/insights/{iid}/?refresh=force_blocking",
                            headers=w.a1.headers) for _ in range(6)]
        outsiders = [
            client.get(f"/api/environments/{w.b1.id}/insights/{iid}/?refresh=force_blocking",
                       headers={"Authorization": f"Bearer {w.keys['other_org_star']}"}),
            client.get(f"/api/environments/{w.a1.id}/insights/{iid}/?refresh=force_blocking",
                       headers={"Authorization": f"Bearer {w.keys['other_org_star']}"}),
            client.get(f"/api/environments/{w.a2_id}/insights/{iid}/?refresh=force_blocking",
                       headers={"Authorization": f"Bearer {w.keys['same_org_scoped_to_A2']}"}),
            client.get(f"/api/environments/{w.a1.id}/insights/{iid}/?refresh=force_blocking",
                       headers={"Authorization": f"Bearer {w.keys['same_org_scoped_to_A2']}"}),
        ]
        results = await asyncio.gather(*owner, *outsiders)
        assert [r.status_code for r in results[:6]] == [200] * 6
        assert [r.status_code for r in results[6:]] == [404, 403, 404, 403]
        assert all(MARK not in r.text for r in results[6:])

"""Dashboards: the endpoints the insights API depends on (create, list, retrieve, update, soft delete)."""

from __future__ import annotations

from tests.conftest import TestEnv


def url(env: TestEnv, path: str = "") -> str:
    return f"/api/environments/{env.id}/dashboards/{path}"


class TestCreateDashboard:
    async def test_valid(self, client, env):
        r = await client.post(url(env), json={"name": "D", "description": "x", "filters": {"date_from": "-7d"},
                                              "variables": {"v": {"value": 1}}}, headers=env.headers)
        assert r.status_code == 201
        body = r.json()
        assert body["name"] == "D" and body["filters"] == {"date_from": "-7d"} and body["tiles"] == []
        assert body["deleted"] is False and body["variables"] == {"v": {"value": 1}}

    async def test_invalid_filters(self, client, env):
        r = await client.post(url(env), json={"filters": []}, headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] == "filters"

    async def test_scope(self, client, env):
        key = await env.make_key(["insight:read"])
        r = await client.post(url(env), json={}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403


class TestListDashboards:
    async def test_lists_live_dashboards_of_this_environment(self, client, env, other_env):
        a = (await client.post(url(env), json={"name": "A"}, headers=env.headers)).json()
        b = (await client.post(url(env), json={"name": "B"}, headers=env.headers)).json()
        await client.post(url(other_env), json={"name": "other"}, headers=other_env.headers)
        await client.patch(url(env, f"{b['id']}/"), json={"deleted": True}, headers=env.headers)
        r = (await client.get(url(env), headers=env.headers)).json()
        assert r["count"] == 1 and [d["id"] for d in r["results"]] == [a["id"]]


class TestRetrieveDashboard:
    async def test_tiles(self, client, env):
        d = (await client.post(url(env), json={"name": "D"}, headers=env.headers)).json()
        insight = (await client.post(f"/api/environments/{env.id}/insights/", json={"name": "I", "dashboards": [d["id"]]},
                                     headers=env.headers)).json()
        r = (await client.get(url(env, f"{d['id']}/"), headers=env.headers)).json()
        assert [t["insight"]["id"] for t in r["tiles"]] == [insight["id"]]

    async def test_unknown_and_other_environment(self, client, env, other_env):
        d = (await client.post(url(other_env), json={"name": "D"}, headers=other_env.headers)).json()
        assert (await client.get(url(env, f"{d['id']}/"), headers=env.headers)).status_code == 404
        assert (await client.get(url(env, "abc/"), headers=env.headers)).status_code == 404


class TestUpdateDashboard:
    async def test_fields_and_soft_delete(self, client, env):
        d = (await client.post(url(env), json={"name": "D"}, headers=env.headers)).json()
        r = await client.patch(url(env, f"{d['id']}/"), json={"name": "E", "filters": {"interval": "week"}},
                               headers=env.headers)
        assert r.json()["name"] == "E" and r.json()["filters"] == {"interval": "week"}
        assert (await client.patch(url(env, f"{d['id']}/"), json={"deleted": True}, headers=env.headers)).status_code == 200
        assert (await client.get(url(env, f"{d['id']}/"), headers=env.headers)).status_code == 404

    async def test_unknown_tile(self, client, env):
        d = (await client.post(url(env), json={"name": "D"}, headers=env.headers)).json()
        r = await client.patch(url(env, f"{d['id']}/"), json={"tiles": [{"id": 999999, "color": "red"}]},
                               headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] == "tiles__0"

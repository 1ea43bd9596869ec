from __future__ import annotations

import pytest

from tests.conftest import TestEnv, new_env


class TestListEnvironments:
    async def test_lists_only_own_organization(self, client, env: TestEnv, other_env: TestEnv):
        r = await client.get("/api/environments/", headers=env.headers)
        assert r.status_code == 200
        body = r.json()
        assert body["count"] == 1
        assert [e["id"] for e in body["results"]] == [env.id]
        assert body["next"] is None and body["previous"] is None

    async def test_pagination_links(self, client, env: TestEnv):
        for i in range(3):
            r = await client.post("/api/environments/", headers=env.headers, json={"name": f"extra {i}"})
            assert r.status_code == 201
        r = await client.get("/api/environments/?limit=2&foo=bar", headers=env.headers)
        body = r.json()
        assert body["count"] == 4 and len(body["results"]) == 2
        assert body["next"] == "http://testserver/api/environments/?foo=bar&limit=2&offset=2"
        assert body["previous"] is None
        r = await client.get(body["next"], headers=env.headers)
        body = r.json()
        assert body["next"] is None
        assert body["previous"] == "http://testserver/api/environments/?foo=bar&limit=2"

    async def test_bad_pagination_params_fall_back(self, client, env: TestEnv):
        r = await client.get("/api/environments/?limit=abc&offset=-5", headers=env.headers)
        assert r.status_code == 200
        assert r.json()["count"] == 1

    async def test_scoped_teams_limit_the_list(self, client, env: TestEnv):
        r = await client.post("/api/environments/", headers=env.headers, json={"name": "second"})
        second = r.json()["id"]
        key = await env.make_key(["project:read"], scoped_teams=[second])
        r = await client.get("/api/environments/", headers={"Authorization": f"Bearer {key}"})
        assert [e["id"] for e in r.json()["results"]] == [second]


class TestCreateEnvironment:
    async def test_valid(self, client, env: TestEnv):
        r = await client.post(
            "/api/environments/",
            headers=env.headers,
            json={"name": "Staging", "timezone": "Europe/Berlin", "week_start_day": 1,
                  "test_account_filters": [{"key": "email", "value": "@tally.local", "operator": "not_icontains",
                                            "type": "person"}]},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["name"] == "Staging" and body["timezone"] == "Europe/Berlin" and body["week_start_day"] == 1
        assert body["api_token"].startswith("phc_")
        assert body["created_at"].endswith("Z")
        assert set(body) >= {"id", "uuid", "name", "api_token", "timezone", "week_start_day",
                             "test_account_filters", "created_at"}

    async def test_name_required(self, client, env: TestEnv):
        r = await client.post("/api/environments/", headers=env.headers, json={})
        assert r.status_code == 400
        assert r.json() == {"type": "validation_error", "code": "required", "detail": "This field is required.",
                            "attr": "name"}

    async def test_invalid_timezone(self, client, env: TestEnv):
        r = await client.post("/api/environments/", headers=env.headers, json={"name": "x", "timezone": "Mars/Base"})
        assert r.status_code == 400
        assert r.json()["attr"] == "timezone" and r.json()["type"] == "validation_error"

    @pytest.mark.parametrize("filters", [[{"key": "x", "type": "nope"}], [{"type": "person"}],
                                         [{"key": "a", "operator": "bogus"}], "notalist"])
    async def test_invalid_test_account_filters(self, client, env: TestEnv, filters):
        r = await client.post("/api/environments/", headers=env.headers, json={"name": "x",
                                                                              "test_account_filters": filters})
        assert r.status_code == 400
        assert r.json()["attr"].startswith("test_account_filters")

    async def test_read_scope_cannot_create(self, client, env: TestEnv):
        key = await env.make_key(["project:read"])
        r = await client.post("/api/environments/", headers={"Authorization": f"Bearer {key}"}, json={"name": "x"})
        assert r.status_code == 403
        assert r.json()["detail"] == "API key missing required scope 'project:write'"


class TestGetEnvironment:
    async def test_own(self, client, env: TestEnv):
        r = await client.get(f"/api/environments/{env.id}/", headers=env.headers)
        assert r.status_code == 200
        assert r.json()["api_token"] == env.creds.project_api_key

    async def test_without_trailing_slash(self, client, env: TestEnv):
        r = await client.get(f"/api/environments/{env.id}", headers=env.headers)
        assert r.status_code == 200

    async def test_other_organization_is_403(self, client, env: TestEnv, other_env: TestEnv):
        r = await client.get(f"/api/environments/{other_env.id}/", headers=env.headers)
        assert r.status_code == 403
        assert r.json() == {"type": "authentication_error", "code": "permission_denied",
                            "detail": "You don't have access to the project.", "attr": None}

    async def test_unknown_is_404(self, client, env: TestEnv):
        r = await client.get("/api/environments/99999999/", headers=env.headers)
        assert r.status_code == 404
        assert r.json() == {"type": "invalid_request", "code": "not_found", "detail": "Project not found.",
                            "attr": None}

    async def test_non_numeric_is_404(self, client, env: TestEnv):
        r = await client.get("/api/environments/abc/", headers=env.headers)
        assert r.status_code == 404


class TestUpdateEnvironment:
    async def test_patch(self, client, env: TestEnv):
        r = await client.patch(f"/api/environments/{env.id}/", headers=env.headers,
                               json={"name": "Renamed", "timezone": "America/New_York", "week_start_day": 0,
                                     "api_token": "phc_ignored"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["name"], body["timezone"], body["week_start_day"]) == ("Renamed", "America/New_York", 0)
        assert body["api_token"] == env.creds.project_api_key  # read-only
        r = await client.get(f"/api/environments/{env.id}/", headers=env.headers)
        assert r.json()["name"] == "Renamed"

    async def test_bad_week_start_day(self, client, env: TestEnv):
        r = await client.patch(f"/api/environments/{env.id}/", headers=env.headers, json={"week_start_day": 5})
        assert r.status_code == 400 and r.json()["attr"] == "week_start_day"

    async def test_patch_other_org_changes_nothing(self, client, env: TestEnv, other_env: TestEnv):
        r = await client.patch(f"/api/environments/{other_env.id}/", headers=env.headers, json={"name": "hijack"})
        assert r.status_code == 403
        r = await client.get(f"/api/environments/{other_env.id}/", headers=other_env.headers)
        assert r.json()["name"] != "hijack"

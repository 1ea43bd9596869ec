"""Insight CRUD, representation, validation, soft delete, dashboards, list filters, activity and CSV
(spec/API.md §3.1–§3.2, §3.5–§3.10, §3.14) against the real backends."""

from __future__ import annotations

import csv
import io
import re

import pytest

from app import clock
from tests.conftest import TestEnv
from tests.sql_statements import sql_statements

TRENDS = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
          "dateRange": {"date_from": "2020-01-10", "date_to": "2020-01-12"}}
VIZ = {"kind": "InsightVizNode", "source": TRENDS}
FULL_FIELDS = {
    "id", "short_id", "name", "derived_name", "filters", "query", "order", "deleted", "dashboards", "dashboard_tiles",
    "last_refresh", "cache_target_age", "next_allowed_client_refresh", "result", "hasMore", "columns", "created_at",
    "created_by", "description", "updated_at", "tags", "favorited", "saved", "last_modified_at", "last_modified_by",
    "is_sample", "effective_restriction_level", "effective_privilege_level", "user_access_level", "timezone",
    "is_cached", "query_status", "hogql", "types", "resolved_date_range", "alerts", "last_viewed_at", "filters_hash",
}
BASIC_FIELDS = {"id", "short_id", "name", "derived_name", "filters", "query", "dashboards", "dashboard_tiles",
                "description", "last_refresh", "refreshing", "saved", "tags", "updated_at", "created_by", "created_at",
                "last_modified_at", "favorited", "user_access_level", "last_viewed_at"}


@pytest.fixture
def frozen():
    clock.freeze("2020-01-12T12:00:00Z")
    yield
    clock.freeze(None)


def url(env: TestEnv, path: str = "") -> str:
    return f"/api/environments/{env.id}/insights/{path}"


async def create(client, env, **body):
    r = await client.post(url(env), json=body, headers=env.headers)
    assert r.status_code == 201, r.text
    return r.json()


class TestCreateInsight:
    async def test_full_representation(self, client, env, frozen):
        body = await create(client, env, name="Pageviews", query=VIZ, tags=[" Foo ", "foo", "BAR"],
                            short_id="ignored", filters_hash="x", _create_in_folder="")
        assert set(body) == FULL_FIELDS
        assert re.fullmatch(r"[A-Za-z0-9]{8}", body["short_id"])
        assert body["tags"] == ["foo", "bar"] and body["saved"] is True and body["favorited"] is False
        assert body["created_at"] == body["updated_at"] == body["last_modified_at"] == "2020-01-12T12:00:00Z"
        assert body["created_by"]["email"] == env.creds.user_email and body["last_modified_by"] == body["created_by"]
        assert body["user_access_level"] == "manager" and body["effective_privilege_level"] == 37
        assert body["effective_restriction_level"] == 21 and body["alerts"] == [] and body["is_sample"] is False
        # default force_cache on a fresh query: "no result" but a cache key
        assert body["result"] is None and body["last_refresh"] is None and body["is_cached"] is False
        assert body["filters_hash"].startswith(f"cache_{env.id}_") and body["timezone"] is None
        assert body["last_viewed_at"] is None and body["filters"] == {} and body["query"] == VIZ

    async def test_anonymous_is_403(self, client, env):
        r = await client.post(url(env), json={})
        assert r.status_code == 403 and r.json()["code"] == "not_authenticated"

    async def test_missing_scope(self, client, env):
        key = await env.make_key(["insight:read"])
        r = await client.post(url(env), json={}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403 and r.json()["detail"] == "API key missing required scope 'insight:write'"


class TestValidation:
    @pytest.mark.parametrize("body,status,code,attr,detail", [
        ({"name": "x" * 401}, 400, "max_length", "name", "Ensure this field has no more than 400 characters."),
        ({"description": True}, 400, "invalid_input", "description", "Not a valid string."),
        ({"derived_name": {"a": 1}}, 400, "invalid_input", "derived_name", "Not a valid string."),
        ({"query": []}, 400, "invalid_input", "query", "Query must be a valid JSON object"),
        ({"query": {"kind": "Nope"}}, 400, "parse_error", None, None),
        ({"query": "select"}, 400, "parse_error", None, None),
        ({"deleted": "maybe"}, 400, "invalid_input", "deleted", "Must be a valid boolean."),
        ({"favorited": None}, 400, "null", "favorited", "This field may not be null."),
        ({"order": "abc"}, 400, "invalid_input", "order", "A valid integer is required."),
        ({"tags": "a"}, 400, "not_a_list", "tags", 'Expected a list of items but got type "str".'),
        ({"dashboards": ["x"]}, 400, "incorrect_type", "dashboards", "Incorrect type. Expected pk value, received str."),
        ({"dashboards": [999999]}, 400, "does_not_exist", "dashboards", 'Invalid pk "999999" - object does not exist.'),
        ({"name": "x" * 401, "description": True}, 400, "max_length", "name", None),
        ({"_create_in_folder": None}, 400, "null", "_create_in_folder", "This field may not be null."),
        ({"order": 2**31}, 400, "max_value", "order", "Ensure this value is less than or equal to 2147483647."),
    ])
    async def test_errors(self, client, env, body, status, code, attr, detail):
        r = await client.post(url(env), json=body, headers=env.headers)
        assert r.status_code == status, r.text
        err = r.json()
        assert err["code"] == code and err["attr"] == attr
        if detail:
            assert err["detail"] == detail
        assert err["type"] == ("invalid_request" if code == "parse_error" else "validation_error")

    async def test_create_in_folder_has_no_length_limit(self, client, env):
        body = await create(client, env, name="A", _create_in_folder="Unfiled/" + "x" * 600)
        assert "_create_in_folder" not in body

    async def test_coercions(self, client, env):
        body = await create(client, env, name=12, deleted="yes", order="3")
        assert body["name"] == "12" and body["deleted"] is True and body["order"] == 3

    async def test_malformed_json(self, client, env):
        r = await client.post(url(env), content=b"{", headers={**env.headers, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "parse_error"


class TestRetrieveInsight:
    async def test_by_id_and_short_id(self, client, env):
        body = await create(client, env, name="A", query=VIZ)
        for ref in (body["id"], body["short_id"]):
            r = await client.get(url(env, f"{ref}/"), headers=env.headers)
            assert r.status_code == 200 and r.json()["id"] == body["id"]
        r = await client.get(url(env, f"{body['id']}/?short_id=zzzzzzzz"), headers=env.headers)
        assert r.status_code == 404 and r.json()["detail"] == "Not found."
        for suffix in ("", "activity/"):  # an empty short_id filters nothing (django-filter skips it)
            r = await client.get(url(env, f"{body['id']}/{suffix}?short_id="), headers=env.headers)
            assert r.status_code == 200, suffix

    async def test_other_environment_is_404(self, client, env, other_env):
        body = await create(client, env, name="A")
        r = await client.get(f"/api/environments/{other_env.id}/insights/{body['id']}/", headers=other_env.headers)
        assert r.status_code == 404

    async def test_access_levels(self, client, env, backends):
        from app.models import Environment, Organization
        from app.services.bootstrap import create_personal_api_key, create_user

        body = await create(client, env, name="A")
        owner_key = await env.make_key(["*"], other_user=True)  # another owner of the organization
        async with backends.sessionmaker() as session:
            org = await session.get(Organization, (await session.get(Environment, env.id)).organization_id)
            member = await create_user(session, organization=org, level=1)
            member_key = await create_personal_api_key(session, user=member, scopes=["*"])
            await session.commit()
        for key, level in ((owner_key, "manager"), (member_key, "editor")):
            r = await client.get(url(env, f"{body['id']}/"), headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200 and r.json()["user_access_level"] == level
            assert r.json()["created_by"]["email"] == env.creds.user_email

    async def test_basic(self, client, env):
        body = await create(client, env, name="A", query=VIZ)
        r = await client.get(url(env, f"{body['id']}/?basic=Yes"), headers=env.headers)
        assert set(r.json()) == BASIC_FIELDS and r.json()["refreshing"] is False

    async def test_bad_format_and_override(self, client, env):
        body = await create(client, env, name="A", query=VIZ)
        assert (await client.get(url(env, f"{body['id']}/?format=xml"), headers=env.headers)).status_code == 404
        r = await client.get(url(env, f"{body['id']}/?filters_override=nope"), headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] == "filters_override"
        assert r.json()["detail"] == "Invalid JSON passed in filters_override parameter"


class TestUpdateInsight:
    async def test_last_modified_rules(self, client, env, frozen):
        body = await create(client, env, name="A", query=VIZ)
        clock.freeze("2020-01-12T13:00:00Z")
        r = await client.patch(url(env, f"{body['id']}/"), json={"tags": ["x"], "query": VIZ}, headers=env.headers)
        assert r.json()["last_modified_at"] == "2020-01-12T12:00:00Z" and r.json()["updated_at"] == "2020-01-12T13:00:00Z"
        r = await client.put(url(env, f"{body['id']}/"), json={"name": "A"}, headers=env.headers)
        assert r.status_code == 200 and r.json()["last_modified_at"] == "2020-01-12T13:00:00Z"

    async def test_soft_delete_and_restore(self, client, env):
        body = await create(client, env, name="A", query=VIZ)
        one = url(env, f"{body['id']}/")
        r = await client.patch(one, json={"deleted": True}, headers=env.headers)
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert (await client.get(one, headers=env.headers)).status_code == 404
        assert (await client.patch(one, json={"name": "B"}, headers=env.headers)).status_code == 404
        assert (await client.put(one, json={"deleted": False}, headers=env.headers)).status_code == 404
        assert (await client.get(url(env), headers=env.headers)).json()["count"] == 0
        r = await client.patch(one, json={"deleted": False}, headers=env.headers)
        assert r.status_code == 200 and r.json()["deleted"] is False
        assert (await client.get(one, headers=env.headers)).status_code == 200


class TestDeleteInsight:
    async def test_405_empty(self, client, env):
        body = await create(client, env, name="A")
        for ref in (body["id"], 999999):
            r = await client.delete(url(env, f"{ref}/"), headers=env.headers)
            assert r.status_code == 405 and r.content == b""
        assert (await client.get(url(env, f"{body['id']}/"), headers=env.headers)).status_code == 200

    async def test_scope_checked_first(self, client, env):
        key = await env.make_key(["insight:read"])
        r = await client.delete(url(env, "1/"), headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403


class TestDashboards:
    async def test_tiles_and_dashboard_filters(self, client, env):
        d = (await client.post(f"/api/environments/{env.id}/dashboards/", json={
            "name": "D", "filters": {"date_from": "2020-01-01", "date_to": "2020-01-05"}}, headers=env.headers)).json()
        body = await create(client, env, name="A", query=VIZ, dashboards=[d["id"]])
        assert body["dashboards"] == [d["id"]] and body["dashboard_tiles"][0]["dashboard_id"] == d["id"]
        assert body["dashboard_tiles"][0]["deleted"] is None
        plain = (await client.get(url(env, f"{body['id']}/"), headers=env.headers)).json()
        r = await client.get(url(env, f"{body['id']}/?from_dashboard={d['id']}"), headers=env.headers)
        item = r.json()
        assert item["query"]["source"]["dateRange"] == {"date_from": "2020-01-01", "date_to": "2020-01-05"}
        assert item["filters_hash"] != plain["filters_hash"] and item["color"] is None and item["layouts"] == {}
        tile_id = body["dashboard_tiles"][0]["id"]
        r = await client.patch(f"/api/environments/{env.id}/dashboards/{d['id']}/",
                               json={"tiles": [{"id": tile_id, "color": "blue", "layouts": {"sm": {"x": 1}}}]},
                               headers=env.headers)
        assert r.status_code == 200 and r.json()["tiles"][0]["color"] == "blue"
        item = (await client.get(url(env, f"{body['id']}/?from_dashboard={d['id']}"), headers=env.headers)).json()
        assert item["color"] == "blue" and item["layouts"] == {"sm": {"x": 1}}
        # moving the insight off the dashboard hides the tile
        r = await client.patch(url(env, f"{body['id']}/"), json={"dashboards": []}, headers=env.headers)
        assert r.json()["dashboards"] == []
        listed = (await client.get(url(env, f"?dashboards=[{d['id']}]"), headers=env.headers)).json()
        assert listed["count"] == 0

    async def test_deleted_dashboard_is_invalid(self, client, env):
        d = (await client.post(f"/api/environments/{env.id}/dashboards/", json={"name": "D"}, headers=env.headers)).json()
        await client.patch(f"/api/environments/{env.id}/dashboards/{d['id']}/", json={"deleted": True}, headers=env.headers)
        r = await client.post(url(env), json={"dashboards": [d["id"]]}, headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] == "dashboards"


class TestListInsights:
    async def test_filters(self, client, env):
        a = await create(client, env, name="Alpha", query=VIZ, tags=["t1"], favorited=True)
        b = await create(client, env, name="Beta", query={"kind": "DataTableNode",
                                                          "source": {"kind": "HogQLQuery", "query": "select 1"}})
        c = await create(client, env, name="Gamma", saved=False, tags=["t2"])

        async def ids(query: str) -> list[int]:
            r = await client.get(url(env, query), headers=env.headers)
            assert r.status_code == 200, r.text
            return [i["id"] for i in r.json()["results"]]

        assert await ids("") == [a["id"], b["id"], c["id"]]
        assert await ids("?favorited=false") == [a["id"]]
        assert await ids("?insight=TRENDS") == [a["id"]]
        assert await ids("?insight=SQL") == [b["id"]]
        assert await ids('?tags=["t2","zz"]') == [c["id"]]
        assert await ids("?saved=0") == [c["id"]]
        assert await ids("?saved=true") == [a["id"], b["id"]]
        assert await ids("?user=whatever") == [a["id"], b["id"], c["id"]]
        assert await ids('?events=["$pageview"]') == [a["id"]]
        assert await ids("?order=-name") == [c["id"], b["id"], a["id"]]
        assert await ids(f"?short_id={b['short_id']}") == [b["id"]]

    async def test_feature_flag_filter(self, client, env):
        by_query = await create(client, env, name="q", query={**VIZ, "source": {
            **TRENDS, "breakdownFilter": {"breakdown": "$feature/My-Flag", "breakdown_type": "event"}}})
        legacy_props = await create(client, env, name="p", filters={
            "insight": "TRENDS", "properties": [{"key": "$feature/my-flag", "value": "on"}]})
        legacy_raw = await create(client, env, name="r", filters={"insight": "TRENDS", "properties": [
            {"key": "$active_feature_flags", "value": "my-flag", "operator": "icontains"}]})
        await create(client, env, name="other", query={**VIZ, "source": {
            **TRENDS, "breakdownFilter": {"breakdown": "$feature/myXflag"}}})
        r = await client.get(url(env, "?feature_flag=my-flag"), headers=env.headers)
        # case-insensitive; legacy property filters may name the flag without the `$feature/` prefix
        assert sorted(i["id"] for i in r.json()["results"]) == sorted([by_query["id"], legacy_props["id"], legacy_raw["id"]])
        r = await client.get(url(env, "?feature_flag=my_flag"), headers=env.headers)
        assert r.json()["count"] == 0  # `_` is not a LIKE wildcard

    async def test_order_by_other_model_fields(self, client, env):
        a = await create(client, env, name="a", description="zeta", derived_name="Beta")
        b = await create(client, env, name="b", description="alpha", derived_name="Alpha")
        for order, expected in (("-description", [a, b]), ("description", [b, a]), ("derived_name", [b, a]),
                                ("-pk", [b, a]), ("created_by", [a, b])):
            r = await client.get(url(env, f"?order={order}"), headers=env.headers)
            assert r.status_code == 200, (order, r.text)
            assert [i["id"] for i in r.json()["results"]] == [x["id"] for x in expected], order

    async def test_dashboards_filter_ignores_deleted_dashboards(self, client, env):
        d = (await client.post(f"/api/environments/{env.id}/dashboards/", json={"name": "D"}, headers=env.headers)).json()
        body = await create(client, env, name="A", query=VIZ, dashboards=[d["id"]])
        r = await client.get(url(env, f"?dashboards=[{d['id']}]"), headers=env.headers)
        assert [i["id"] for i in r.json()["results"]] == [body["id"]]
        await client.patch(f"/api/environments/{env.id}/dashboards/{d['id']}/", json={"deleted": True}, headers=env.headers)
        r = await client.get(url(env, f"?dashboards=[{d['id']}]"), headers=env.headers)
        assert r.json()["count"] == 0

    async def test_created_by_and_dates(self, client, env, frozen):
        me = (await create(client, env, name="old"))
        clock.freeze("2020-01-14T12:00:00Z")
        new = await create(client, env, name="new")

        async def ids(query: str) -> list[int]:
            r = await client.get(url(env, query), headers=env.headers)
            assert r.status_code == 200, r.text
            return [i["id"] for i in r.json()["results"]]

        user_id = me["created_by"]["id"]
        assert await ids(f"?created_by=[{user_id}]") == [me["id"], new["id"]]
        assert await ids("?created_by=[999999]") == [] and len(await ids("?created_by=")) == 2
        assert await ids("?created_date_from=2020-01-13") == [new["id"]]
        assert await ids("?date_to=-1d") == [me["id"]]
        assert await ids("?last_viewed_date_from=2020-01-13&order=-last_viewed_at") == [new["id"]]
        r = await client.get(url(env, "?tags=[oops"), headers=env.headers)
        assert r.status_code == 400

    async def test_pagination_and_last_viewed(self, client, env):
        for name in ("a", "b", "c"):
            await create(client, env, name=name)
        r = (await client.get(url(env, "?limit=2"), headers=env.headers)).json()
        assert r["count"] == 3 and r["next"].endswith("limit=2&offset=2") and r["previous"] is None
        assert r["results"][0]["last_viewed_at"] is not None

    async def test_search(self, client, env):
        exact = await create(client, env, name="Dashboard overview")
        await create(client, env, name="Unrelated")
        tagged = await create(client, env, name="Other", tags=["dashboard"])
        r = (await client.get(url(env, "?search=dashboard"), headers=env.headers)).json()
        assert {i["id"]: i["search_match_type"] for i in r["results"]} == {exact["id"]: "exact", tagged["id"]: "exact"}
        r = (await client.get(url(env, "?search=dahsboard"), headers=env.headers)).json()
        assert [i["id"] for i in r["results"]] == [exact["id"]] and r["results"][0]["search_match_type"] == "similar"
        r = await client.get(url(env, "?search=" + "x" * 201), headers=env.headers)
        assert r.status_code == 400 and r.json()["detail"] == "Search query must be 200 characters or fewer."
        assert (await client.get(url(env, "?search=" + "x" * 200), headers=env.headers)).status_code == 200
        r = await client.get(url(env, "?search=%27;drop%20table%20insight;--%00"), headers=env.headers)
        assert r.status_code == 200

    async def test_constant_sql_statements(self, client, env, backends):
        for i in range(12):
            await create(client, env, name=f"i{i}", query={**VIZ, "source": {**TRENDS, "interval": "hour"}} if i % 2 else VIZ)

        counts = []
        for limit in (2, 12):
            with sql_statements(backends) as statements:
                r = await client.get(url(env, f"?limit={limit}"), headers=env.headers)
            assert r.status_code == 200 and len(r.json()["results"]) == limit
            counts.append(len(statements))
        assert counts[0] == counts[1]


class TestViewed:
    """`POST insights/viewed/` and `POST insights/{id}/viewed/` (PostHog's view tracking)."""

    async def order(self, client, env) -> list[int]:
        r = await client.get(url(env, "?order=-last_viewed_at"), headers=env.headers)
        return [i["id"] for i in r.json()["results"]]

    async def test_bulk_view_moves_insights_to_the_front(self, client, env, frozen):
        a = await create(client, env, name="a")
        clock.freeze("2020-01-12T13:00:00Z")
        b = await create(client, env, name="b")
        assert await self.order(client, env) == [b["id"], a["id"]]
        clock.freeze("2020-01-12T14:00:00Z")
        r = await client.post(url(env, "viewed/"), json={"insight_ids": [a["id"], 999999999]}, headers=env.headers)
        assert r.status_code == 201 and r.content == b""
        assert await self.order(client, env) == [a["id"], b["id"]]
        listed = (await client.get(url(env, "?order=-last_viewed_at"), headers=env.headers)).json()["results"]
        assert listed[0]["last_viewed_at"].startswith("2020-01-12T14:00:00")

    async def test_one_insight_by_id_or_short_id(self, client, env, frozen):
        a = await create(client, env, name="a")
        clock.freeze("2020-01-12T13:00:00Z")
        b = await create(client, env, name="b")
        clock.freeze("2020-01-12T14:00:00Z")
        r = await client.post(url(env, f"{a['short_id']}/viewed/"), headers=env.headers)
        assert r.status_code == 201
        assert await self.order(client, env) == [a["id"], b["id"]]
        assert (await client.post(url(env, "424242/viewed/"), headers=env.headers)).status_code == 404

    @pytest.mark.parametrize("body", [{}, {"insight_ids": []}, {"insight_ids": 5}, {"insight_ids": "1,2"}])
    async def test_insight_ids_must_be_a_non_empty_list(self, client, env, body):
        r = await client.post(url(env, "viewed/"), json=body, headers=env.headers)
        assert r.status_code == 400
        assert r.json()["attr"] == "insight_ids" and r.json()["detail"] == "Must be a non-empty list of insight IDs"

    async def test_other_environments_insights_are_skipped(self, client, env, other_env, frozen):
        theirs = await create(client, other_env, name="theirs")
        mine = await create(client, env, name="mine")
        clock.freeze("2020-01-13T12:00:00Z")
        r = await client.post(url(env, "viewed/"), json={"insight_ids": [theirs["id"], mine["id"]]},
                              headers=env.headers)
        assert r.status_code == 201
        listed = (await client.get(url(other_env), headers=other_env.headers)).json()["results"]
        assert listed[0]["last_viewed_at"].startswith("2020-01-12T12:00:00")  # their creation only
        r = await client.post(url(env, f"{theirs['id']}/viewed/"), headers=env.headers)
        assert r.status_code == 404

    async def test_needs_insight_read(self, client, env):
        key = await env.make_key(["dashboard:read"])
        r = await client.post(url(env, "viewed/"), json={"insight_ids": [1]}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403


class TestActivity:
    async def test_change_types(self, client, env):
        d = (await client.post(f"/api/environments/{env.id}/dashboards/", json={"name": "D"}, headers=env.headers)).json()
        body = await create(client, env, name="insight name", query=VIZ)
        one = url(env, f"{body['id']}/")
        await client.patch(one, json={"name": "insight new name", "tags": ["add", "tags"], "description": "d"},
                           headers=env.headers)
        await client.patch(one, json={"dashboards": [d["id"]]}, headers=env.headers)
        await client.patch(one, json={"description": ""}, headers=env.headers)
        await client.patch(one, json={"deleted": True}, headers=env.headers)
        assert (await client.get(url(env, f"{body['id']}/activity/"), headers=env.headers)).status_code == 404
        await client.patch(one, json={"deleted": False}, headers=env.headers)
        r = (await client.get(url(env, f"{body['id']}/activity/"), headers=env.headers)).json()
        assert r["total_count"] == 6
        kinds = [e["activity"] for e in r["results"]]
        assert kinds == ["restored", "deleted", "updated", "updated", "updated", "created"]
        first_update = r["results"][4]["detail"]["changes"]
        assert [(c["field"], c["action"]) for c in first_update] == [
            ("tags", "changed"), ("name", "changed"), ("description", "created")]
        assert r["results"][3]["detail"]["changes"][0]["after"] == [{"id": d["id"], "name": "D"}]
        assert r["results"][2]["detail"]["changes"][0]["action"] == "deleted"
        assert r["results"][-1]["detail"]["changes"] is None and r["results"][0]["user"]["email"] == env.creds.user_email
        page = (await client.get(url(env, "activity/?limit=2&page=2"), headers=env.headers)).json()
        assert len(page["results"]) == 2 and "page=3" in page["next"] and "page=1" in page["previous"]
        r = await client.get(url(env, "activity/?page=0"), headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] == "page"

    async def test_soft_delete_logs_no_dashboards_change(self, client, env):
        d = (await client.post(f"/api/environments/{env.id}/dashboards/", json={"name": "D"}, headers=env.headers)).json()
        body = await create(client, env, name="A", query=VIZ, dashboards=[d["id"]])
        await client.patch(url(env, f"{body['id']}/"), json={"deleted": True}, headers=env.headers)
        entry = (await client.get(url(env, "activity/"), headers=env.headers)).json()["results"][0]
        assert entry["activity"] == "deleted"
        assert [(c["field"], c["before"], c["after"]) for c in entry["detail"]["changes"]] == [("deleted", False, True)]

    async def test_unnamed_insights_are_not_logged(self, client, env):
        await create(client, env, query=VIZ)
        r = (await client.get(url(env, "activity/"), headers=env.headers)).json()
        assert r["total_count"] == 0


class TestCSV:
    async def test_retrieve_and_list(self, client, env):
        body = await create(client, env, name='Say "hi", ok', query=VIZ, tags=["a"])
        r = await client.get(url(env, f"{body['id']}/?format=csv"), headers=env.headers)
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.text.endswith("\r\n") and r.text.count("\r\n") == 2
        rows = list(csv.reader(io.StringIO(r.text)))
        header = rows[0]
        assert header == sorted(header) and "query.source.series.0.event" in header and "tags.0" in header
        assert "result" in header and "dashboards" not in header  # empty arrays contribute no column
        row = dict(zip(header, rows[1]))
        assert row["name"] == 'Say "hi", ok' and row["saved"] == "True" and row["result"] == ""
        r = await client.get(url(env, "?format=csv"), headers={**env.headers})
        rows = list(csv.reader(io.StringIO(r.text)))
        assert len(rows) == 2 and rows[0][:3] == ["count", "next", "previous"] and "results.0.name" in rows[0]


class TestCSVErrors:
    """Errors of a CSV request are a one-row CSV of the error object (§3.14), whichever check fails."""

    @staticmethod
    def _row(r) -> dict:
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        rows = list(csv.reader(io.StringIO(r.text)))
        assert len(rows) == 2 and rows[0] == ["attr", "code", "detail", "type"]
        return dict(zip(rows[0], rows[1]))

    async def test_not_authenticated(self, client, env):
        r = await client.get(url(env, "?format=csv"))
        assert r.status_code == 403
        assert self._row(r) == {"attr": "", "code": "not_authenticated", "type": "authentication_error",
                                "detail": "Authentication credentials were not provided."}

    async def test_invalid_key_on_retrieve(self, client, env):
        body = await create(client, env, query=VIZ)
        r = await client.get(url(env, f"{body['id']}/?format=csv"), headers={"Authorization": "Bearer phx_nope"})
        assert r.status_code == 403 and self._row(r)["code"] == "authentication_failed"

    async def test_missing_scope_and_accept_header(self, client, env):
        key = await env.make_key(["element:read"])
        r = await client.get(url(env, ""), headers={"Authorization": f"Bearer {key}", "Accept": "text/csv"})
        assert r.status_code == 403
        assert self._row(r)["detail"] == "API key missing required scope 'insight:read'"

    async def test_other_organization(self, client, env, other_env):
        r = await client.get(url(other_env, "?format=csv"), headers=env.headers)
        assert r.status_code == 403 and self._row(r)["code"] == "permission_denied"

    async def test_unknown_environment_and_object(self, client, env):
        r = await client.get("/api/environments/999999999/insights/?format=csv", headers=env.headers)
        assert r.status_code == 404 and self._row(r)["detail"] == "Project not found."
        r = await client.get(url(env, "999999999/?format=csv"), headers=env.headers)
        assert r.status_code == 404 and self._row(r)["detail"] == "Not found."

    async def test_format_other_routes_cannot_produce(self, client, env):
        # §1.1: csv only on list/retrieve; an unknown format is a 404 before anything is written.
        body = await create(client, env, name="A", query=VIZ)
        for path in ("activity/", f"{body['id']}/activity/", f"{body['id']}/analyze/"):
            for fmt in ("csv", "xml"):
                r = await client.get(url(env, f"{path}?format={fmt}"), headers=env.headers)
                assert r.status_code == 404 and r.json()["detail"] == "Not found.", (path, fmt)
        r = await client.post(url(env, "?format=xml"), json={"name": "B"}, headers=env.headers)
        assert r.status_code == 404
        r = await client.patch(url(env, f"{body['id']}/?format=xml"), json={"name": "C"}, headers=env.headers)
        assert r.status_code == 404
        listed = (await client.get(url(env), headers=env.headers)).json()
        assert [i["name"] for i in listed["results"]] == ["A"]
        r = await client.get(url(env, "activity/?format=json"), headers=env.headers)
        assert r.status_code == 200

    async def test_accept_negotiation(self, client, env):
        await create(client, env, name="A", query=VIZ)
        r = await client.get(url(env), headers={**env.headers, "Accept": "text/*"})
        assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
        # JSON is the first renderer: it wins a tie
        r = await client.get(url(env), headers={**env.headers, "Accept": "text/csv, application/json"})
        assert r.headers["content-type"] == "application/json"
        for path in ("", "activity/"):
            r = await client.get(url(env, path), headers={**env.headers, "Accept": "application/xml"})
            assert r.status_code == 406 and r.json()["code"] == "not_acceptable"
            assert r.headers["content-type"] == "application/json"
        r = await client.get(url(env, "activity/"), headers={**env.headers, "Accept": "text/csv"})
        assert r.status_code == 406

    async def test_json_requests_keep_json_errors(self, client, env):
        r = await client.get(url(env, ""))
        assert r.status_code == 403 and r.headers["content-type"] == "application/json"
        r = await client.get(url(env, "?format=xml"), headers=env.headers)
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"

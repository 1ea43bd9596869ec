"""Object-level access control of insights (spec/API.md §3.5.4): rules are inserted directly (there
is no API for them) and observed through the HTTP API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AccessControl, Environment, Organization, OrganizationMembership
from app.services.bootstrap import create_personal_api_key, create_user
from tests.routers.insight_helpers import create_insight

QUERY = {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
                                              "dateRange": {"date_from": "2020-01-10", "date_to": "2020-01-12"}}}


class People:
    def __init__(self, env, backends) -> None:
        self.env = env
        self.backends = backends

    async def member(self, level: int = 1) -> tuple[dict[str, str], int]:
        async with self.backends.sessionmaker() as session:
            org = await session.get(Organization, (await session.get(Environment, self.env.id)).organization_id)
            user = await create_user(session, organization=org, level=level)
            key = await create_personal_api_key(session, user=user, scopes=["*"])
            member_id = await session.scalar(select(OrganizationMembership.id).where(
                OrganizationMembership.user_id == user.id, OrganizationMembership.organization_id == org.id))
            await session.commit()
        return {"Authorization": f"Bearer {key}"}, member_id

    async def rule(self, level: str, *, insight_id: int | None, member_id: int | None) -> None:
        async with self.backends.sessionmaker() as session:
            session.add(AccessControl(environment_id=self.env.id, resource="insight",
                                      resource_id=None if insight_id is None else str(insight_id),
                                      access_level=level, organization_member_id=member_id))
            await session.commit()


@pytest.fixture
def people(env, backends) -> People:
    return People(env, backends)


def listing(env) -> str:
    return f"/api/environments/{env.id}/insights/"


def detail(env, insight) -> str:
    return f"/api/environments/{env.id}/insights/{insight['id']}/"


async def ids(client, env, headers, query: str = "") -> list[int]:
    r = await client.get(listing(env) + query, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["results"])
    return sorted(i["id"] for i in body["results"])


class TestDeniedInsights:
    async def test_default_none_hides_from_members_only(self, client, env, people):
        private = await create_insight(client, env, QUERY)
        public = await create_insight(client, env, QUERY)
        member, _ = await people.member()
        admin, _ = await people.member(level=8)
        await people.rule("none", insight_id=private["id"], member_id=None)
        assert await ids(client, env, member) == [public["id"]]
        assert await ids(client, env, admin) == sorted([private["id"], public["id"]])
        assert await ids(client, env, env.headers) == sorted([private["id"], public["id"]])  # the creator
        r = await client.get(detail(env, private), headers=member)
        assert r.status_code == 403
        assert r.json() == {"type": "authentication_error", "code": "permission_denied", "attr": None,
                            "detail": "You do not have viewer access to this resource."}
        assert (await client.get(detail(env, private), headers=admin)).json()["user_access_level"] == "manager"
        assert (await client.get(detail(env, public), headers=member)).json()["user_access_level"] == "editor"

    async def test_member_rule_beats_the_default(self, client, env, people):
        insight = await create_insight(client, env, QUERY)
        member, member_id = await people.member()
        await people.rule("none", insight_id=insight["id"], member_id=None)
        await people.rule("viewer", insight_id=insight["id"], member_id=member_id)
        r = await client.get(detail(env, insight), headers=member)
        assert r.status_code == 200 and r.json()["user_access_level"] == "viewer"
        assert await ids(client, env, member) == [insight["id"]]
        r = await client.patch(detail(env, insight), json={"name": "x"}, headers=member)
        assert r.status_code == 403 and r.json()["detail"] == "You do not have editor access to this resource."

    async def test_resource_wide_rule_for_a_member(self, client, env, people, backends):
        theirs = await create_insight(client, env, QUERY)
        member, member_id = await people.member()
        await people.rule("none", insight_id=None, member_id=member_id)
        r = await client.post(listing(env), json={"name": "mine", "query": QUERY}, headers=member)
        mine = r.json()
        assert mine["user_access_level"] == "manager"
        assert await ids(client, env, member) == [mine["id"]]
        assert (await client.get(detail(env, theirs), headers=member)).status_code == 403
        # An object rule for the member outranks the resource-wide one.
        await people.rule("editor", insight_id=theirs["id"], member_id=member_id)
        assert await ids(client, env, member) == sorted([mine["id"], theirs["id"]])

    async def test_routes_of_one_insight_need_viewer_access(self, client, env, people):
        # §3.10-§3.12: activity, analyze and suggestions look the insight up as retrieve does (403 when denied).
        private = await create_insight(client, env, QUERY)
        member, _ = await people.member()
        await people.rule("none", insight_id=private["id"], member_id=None)
        for suffix in ("activity/", "analyze/", "suggestions/"):
            r = await client.get(detail(env, private) + suffix, headers=member)
            assert r.status_code == 403, (suffix, r.text)
            assert r.json()["detail"] == "You do not have viewer access to this resource."
            assert (await client.get(detail(env, private) + suffix, headers=env.headers)).status_code == 200
        r = await client.post(detail(env, private) + "suggestions/", json={}, headers=member)
        assert r.status_code == 403

    async def test_short_id_lookup_in_list(self, client, env, people):
        private = await create_insight(client, env, QUERY)
        member, _ = await people.member()
        admin, _ = await people.member(level=8)
        await people.rule("none", insight_id=private["id"], member_id=None)
        assert await ids(client, env, member, f"?short_id={private['short_id']}") == []
        assert await ids(client, env, admin, f"?short_id={private['short_id']}") == [private["id"]]

    async def test_snapshot_and_new_rules(self, client, env, people):
        insight = await create_insight(client, env, QUERY)
        member, member_id = await people.member()
        assert (await client.get(detail(env, insight), headers=member)).status_code == 200  # snapshot taken
        await people.rule("none", insight_id=insight["id"], member_id=member_id)
        assert (await client.get(detail(env, insight), headers=member)).status_code == 403
        assert (await client.get(detail(env, insight), headers=env.headers)).status_code == 200

    async def test_denied_follower_gets_nothing_computed(self, client, env, people, backends):
        from app.services.query_runner import executions_key

        insight = await create_insight(client, env, QUERY)
        member, _ = await people.member()
        await people.rule("none", insight_id=insight["id"], member_id=None)
        before = int(await backends.redis.get(executions_key(env.id)) or 0)
        r = await client.get(detail(env, insight) + "?refresh=force_blocking", headers=member)
        assert r.status_code == 403
        assert int(await backends.redis.get(executions_key(env.id)) or 0) == before

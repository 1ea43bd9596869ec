"""The auth/scope matrix of spec/API.md §1.3–1.5, on real routes (environments) and on a small
router wired with the same `authorize` dependency as the insight/element routes."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter

from app.auth import generate_key, hash_key, mask_key, scope_satisfied
from app.deps import Context, authorize
from app.main import create_app
from tests.conftest import TestEnv
from tests.sql_statements import sql_statements

probe = APIRouter(prefix="/api/environments/{environment_id}")


@probe.get("/probe_insights/")
async def probe_insights(ctx: Annotated[Context, authorize("insight:read", throttle="insight")]) -> dict:
    return {"environment": ctx.env.id, "user": ctx.user.email}


@probe.post("/probe_insights/")
async def probe_insights_write(ctx: Annotated[Context, authorize("insight:write", throttle="insight")]) -> dict:
    return {"ok": True}


@probe.get("/probe_elements/")
async def probe_elements(ctx: Annotated[Context, authorize("element:read", throttle="element", challenge=True)]) -> dict:
    return {"ok": True}


@probe.get("/probe_unmapped/")
async def probe_unmapped(ctx: Annotated[Context, authorize(None)]) -> dict:
    return {"ok": True}


@pytest.fixture(scope="module")
async def probe_app(settings, backends):
    s = settings.model_copy(update={"rate_limits": "on", "rate_limit_insight_per_minute": 3})
    application = create_app(s, backends=backends)
    application.include_router(probe)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def pclient(probe_app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=probe_app), base_url="http://testserver") as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestKeys:
    def test_format(self):
        key = generate_key()
        assert key.startswith("phx_") and len(key) == 47 and key[4:].isalnum()

    def test_hash_is_salted(self):
        key = generate_key()
        assert hash_key(key, "a") != hash_key(key, "b")
        assert mask_key(key) == f"phx_...{key[-4:]}"

    async def test_key_is_not_stored_in_clear(self, env: TestEnv, backends):
        from sqlalchemy import select

        from app.models import PersonalAPIKey

        async with backends.sessionmaker() as session:
            rows = (await session.scalars(select(PersonalAPIKey))).all()
        for row in rows:
            assert env.key not in (row.secure_value, row.salt, row.mask_value)

    @pytest.mark.parametrize(
        "scopes, required, ok",
        [(["insight:read"], "insight:read", True), (["insight:write"], "insight:read", True),
         (["insight:read"], "insight:write", False), (["element:write"], "insight:read", False)],
    )
    def test_scope_satisfied(self, scopes, required, ok):
        assert scope_satisfied(scopes, required) is ok


class TestAuthentication:
    async def test_no_credentials_is_403_on_insight_style_routes(self, pclient, env: TestEnv):
        r = await pclient.get(f"/api/environments/{env.id}/probe_insights/")
        assert r.status_code == 403
        assert r.json() == {"type": "authentication_error", "code": "not_authenticated",
                            "detail": "Authentication credentials were not provided.", "attr": None}
        assert "www-authenticate" not in r.headers

    async def test_no_credentials_is_401_with_challenge_on_element_routes(self, pclient, env: TestEnv):
        r = await pclient.get(f"/api/environments/{env.id}/probe_elements/")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == (
            'Bearer resource_metadata="http://testserver/.well-known/oauth-protected-resource"')
        assert r.json()["code"] == "not_authenticated"

    async def test_invalid_key_element_route_401(self, pclient, env: TestEnv):
        r = await pclient.get(f"/api/environments/{env.id}/probe_elements/", headers=bearer("phx_nope"))
        assert r.status_code == 401 and r.json()["code"] == "authentication_failed"
        assert "www-authenticate" in r.headers

    @pytest.mark.parametrize("where, detail_word", [("header", "Authorization header"), ("query", "query string"),
                                                    ("body", "body")])
    async def test_invalid_key_names_its_source(self, pclient, env: TestEnv, where, detail_word):
        url = f"/api/environments/{env.id}/probe_insights/"
        if where == "header":
            r = await pclient.get(url, headers=bearer("phx_invalid"))
        elif where == "query":
            r = await pclient.get(url, params={"personal_api_key": "phx_invalid"})
        else:
            r = await pclient.post(url, json={"personal_api_key": "phx_invalid"})
        assert r.status_code == 403
        assert r.json() == {"type": "authentication_error", "code": "authentication_failed",
                            "detail": f"Personal API key found in request {detail_word} is invalid.", "attr": None}

    async def test_valid_fallbacks(self, pclient, env: TestEnv):
        url = f"/api/environments/{env.id}/probe_insights/"
        assert (await pclient.get(url, params={"personal_api_key": env.key})).status_code == 200
        assert (await pclient.post(url, json={"personal_api_key": env.key})).status_code == 200

    async def test_header_wins_over_fallbacks(self, pclient, env: TestEnv):
        url = f"/api/environments/{env.id}/probe_insights/"
        r = await pclient.get(url, headers=bearer("phx_bad"), params={"personal_api_key": env.key})
        assert r.status_code == 403 and "Authorization header" in r.json()["detail"]

    async def test_oauth_token_disables_fallbacks(self, pclient, env: TestEnv):
        url = f"/api/environments/{env.id}/probe_insights/"
        r = await pclient.get(url, headers=bearer("pha_something"), params={"personal_api_key": env.key})
        assert r.status_code == 403 and r.json()["code"] == "not_authenticated"

    async def test_bearer_is_case_sensitive(self, pclient, env: TestEnv):
        r = await pclient.get(f"/api/environments/{env.id}/probe_insights/",
                              headers={"Authorization": f"bearer {env.key}"})
        assert r.status_code == 403 and r.json()["code"] == "not_authenticated"

    async def test_header_token_is_the_rest_of_the_line(self, pclient, env: TestEnv):
        # PostHog's `^Bearer\s+(\S.+)$`: a token with inner spaces is a (bad) key, not "no credentials";
        # surrounding whitespace is stripped.
        url = f"/api/environments/{env.id}/probe_insights/"
        r = await pclient.get(url, headers={"Authorization": f"Bearer {env.key} extra"})
        assert r.status_code == 403 and r.json()["code"] == "authentication_failed"
        assert r.json()["detail"] == "Personal API key found in request Authorization header is invalid."
        assert (await pclient.get(url, headers={"Authorization": f"Bearer   {env.key}  "})).status_code == 200

    async def test_valid_key(self, pclient, env: TestEnv):
        r = await pclient.get(f"/api/environments/{env.id}/probe_insights/", headers=env.headers)
        assert r.status_code == 200
        assert r.json() == {"environment": env.id, "user": env.creds.user_email}


class TestScopes:
    @pytest.mark.parametrize(
        "scopes, method, status",
        [
            ([], "GET", 200), ([], "POST", 200),                      # legacy key: everything
            (["*"], "GET", 200), (["*"], "POST", 200),
            (["insight:read"], "GET", 200), (["insight:read"], "POST", 403),
            (["insight:write"], "GET", 200), (["insight:write"], "POST", 200),
            (["element:read"], "GET", 403), (["element:write", "query:read"], "POST", 403),
        ],
    )
    async def test_matrix(self, pclient, env: TestEnv, scopes, method, status):
        key = await env.make_key(scopes)
        r = await pclient.request(method, f"/api/environments/{env.id}/probe_insights/", headers=bearer(key),
                                  json={} if method == "POST" else None)
        assert r.status_code == status, r.text
        if status == 403:
            needed = "insight:read" if method == "GET" else "insight:write"
            assert r.json() == {"type": "authentication_error", "code": "permission_denied",
                                "detail": f"API key missing required scope '{needed}'", "attr": None}

    async def test_null_scopes_are_legacy(self, pclient, env: TestEnv):
        key = await env.make_key(None)
        assert (await pclient.get(f"/api/environments/{env.id}/probe_unmapped/", headers=bearer(key))).status_code == 200

    async def test_unmapped_action_refuses_scoped_keys(self, pclient, env: TestEnv):
        key = await env.make_key(["*"])
        r = await pclient.get(f"/api/environments/{env.id}/probe_unmapped/", headers=bearer(key))
        assert r.status_code == 403
        assert r.json()["detail"] == "This action does not support Personal API Key access"

    async def test_unmapped_check_comes_before_environment_resolution(self, pclient, env: TestEnv):
        key = await env.make_key(["*"])
        r = await pclient.get("/api/environments/99999999/probe_unmapped/", headers=bearer(key))
        assert r.status_code == 403

    async def test_missing_scope_on_unknown_environment_is_404(self, pclient, env: TestEnv):
        key = await env.make_key(["element:read"])
        r = await pclient.get("/api/environments/99999999/probe_insights/", headers=bearer(key))
        assert r.status_code == 404 and r.json()["detail"] == "Project not found."

    async def test_scoped_teams(self, pclient, env: TestEnv, client):
        r = await client.post("/api/environments/", headers=env.headers, json={"name": "second"})
        second = r.json()["id"]
        key = await env.make_key(["insight:read"], scoped_teams=[env.id])
        assert (await pclient.get(f"/api/environments/{env.id}/probe_insights/", headers=bearer(key))).status_code == 200
        r = await pclient.get(f"/api/environments/{second}/probe_insights/", headers=bearer(key))
        assert r.status_code == 403
        assert r.json()["detail"] == f"API key does not have access to the requested project: ID {second}."

    async def test_scoped_teams_checked_before_scope(self, pclient, env: TestEnv, client):
        r = await client.post("/api/environments/", headers=env.headers, json={"name": "second"})
        second = r.json()["id"]
        key = await env.make_key(["element:read"], scoped_teams=[env.id])
        r = await pclient.get(f"/api/environments/{second}/probe_insights/", headers=bearer(key))
        assert "does not have access to the requested project" in r.json()["detail"]

    async def test_other_org_member_is_denied(self, pclient, env: TestEnv, other_env: TestEnv):
        r = await pclient.get(f"/api/environments/{other_env.id}/probe_insights/", headers=env.headers)
        assert r.status_code == 403 and r.json()["detail"] == "You don't have access to the project."

    async def test_same_org_other_user_allowed(self, pclient, env: TestEnv):
        key = await env.make_key(["insight:read"], other_user=True)
        assert (await pclient.get(f"/api/environments/{env.id}/probe_insights/", headers=bearer(key))).status_code == 200


class TestRateLimits:
    async def test_throttled_after_limit_with_retry_after(self, pclient, env: TestEnv):
        url = f"/api/environments/{env.id}/probe_insights/"
        statuses = [(await pclient.get(url, headers=env.headers)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        r = await pclient.get(url, headers=env.headers)
        assert r.json()["type"] == "throttled_error" and r.json()["code"] == "throttled"
        assert 1 <= int(r.headers["retry-after"]) <= 60

    async def test_limits_are_per_environment_and_key(self, pclient, env: TestEnv):
        other_key = await env.make_key(["*"])
        url = f"/api/environments/{env.id}/probe_insights/"
        for _ in range(3):
            await pclient.get(url, headers=env.headers)
        assert (await pclient.get(url, headers=bearer(other_key))).status_code == 200

    async def test_auth_failure_comes_before_throttle(self, pclient, env: TestEnv):
        url = f"/api/environments/{env.id}/probe_insights/"
        for _ in range(4):
            await pclient.get(url, headers=env.headers)
        assert (await pclient.get(url)).status_code == 403


class TestAuthCache:
    """Authentication results are cached in the process; writes through the process revoke at once."""

    async def _write(self, backends, statement) -> None:
        async with backends.sessionmaker() as session:
            await session.execute(statement)
            await session.commit()

    async def test_cached_request_runs_no_sql(self, pclient, env: TestEnv, backends):
        url = f"/api/environments/{env.id}/probe_insights/"
        assert (await pclient.get(url, headers=env.headers)).status_code == 200
        with sql_statements(backends) as seen:
            assert (await pclient.get(url, headers=env.headers)).status_code == 200
        assert seen == []

    async def test_deleted_key_is_refused_at_once(self, pclient, env: TestEnv, backends):
        from sqlalchemy import delete

        from app.models import PersonalAPIKey

        key = await env.make_key(["*"])
        url = f"/api/environments/{env.id}/probe_insights/"
        assert (await pclient.get(url, headers=bearer(key))).status_code == 200
        await self._write(backends, delete(PersonalAPIKey).where(PersonalAPIKey.lookup_prefix == key[:12]))
        r = await pclient.get(url, headers=bearer(key))
        assert r.status_code == 403 and r.json()["code"] == "authentication_failed"

    async def test_rolled_key_is_refused_at_once(self, pclient, env: TestEnv, backends):
        from sqlalchemy import select

        from app.auth import generate_key, new_key_record
        from app.models import PersonalAPIKey

        key = await env.make_key(["*"])
        url = f"/api/environments/{env.id}/probe_insights/"
        assert (await pclient.get(url, headers=bearer(key))).status_code == 200
        rolled = generate_key()
        async with backends.sessionmaker() as session:  # an ORM change (flush), not a bulk statement
            row = await session.scalar(select(PersonalAPIKey).where(PersonalAPIKey.lookup_prefix == key[:12]))
            for name, value in new_key_record(rolled).items():
                setattr(row, name, value)
            await session.commit()
        assert (await pclient.get(url, headers=bearer(key))).status_code == 403
        assert (await pclient.get(url, headers=bearer(rolled))).status_code == 200

    async def test_deactivated_user_is_refused_at_once(self, pclient, env: TestEnv, backends):
        from sqlalchemy import update

        from app.models import User

        url = f"/api/environments/{env.id}/probe_insights/"
        assert (await pclient.get(url, headers=env.headers)).status_code == 200
        await self._write(backends, update(User).where(User.email == env.creds.user_email).values(is_active=False))
        assert (await pclient.get(url, headers=env.headers)).status_code == 403

    async def test_removed_membership_is_refused_at_once(self, pclient, env: TestEnv, backends):
        from sqlalchemy import delete, select

        from app.models import OrganizationMembership, User

        url = f"/api/environments/{env.id}/probe_insights/"
        assert (await pclient.get(url, headers=env.headers)).status_code == 200
        async with backends.sessionmaker() as session:
            user_id = await session.scalar(select(User.id).where(User.email == env.creds.user_email))
            await session.execute(delete(OrganizationMembership).where(OrganizationMembership.user_id == user_id))
            await session.commit()
        r = await pclient.get(url, headers=env.headers)
        assert r.status_code == 403 and r.json()["detail"] == "You don't have access to the project."

    async def test_changed_scopes_apply_at_once(self, pclient, env: TestEnv, backends):
        from sqlalchemy import update

        from app.models import PersonalAPIKey

        key = await env.make_key(["insight:read"])
        url = f"/api/environments/{env.id}/probe_insights/"
        assert (await pclient.get(url, headers=bearer(key))).status_code == 200
        await self._write(backends, update(PersonalAPIKey).where(PersonalAPIKey.lookup_prefix == key[:12])
                          .values(scopes=["element:read"]))
        r = await pclient.get(url, headers=bearer(key))
        assert r.status_code == 403 and r.json()["detail"] == "API key missing required scope 'insight:read'"

    async def test_changes_from_elsewhere_apply_within_the_ttl(self, settings, backends, env: TestEnv):
        """A write this process cannot see (another process, raw SQL) is noticed when the entry expires."""
        import asyncio

        from sqlalchemy import text

        s = settings.model_copy(update={"auth_cache_seconds": 0.3})
        application = create_app(s, backends=backends)
        application.include_router(probe)
        url = f"/api/environments/{env.id}/probe_insights/"
        async with application.router.lifespan_context(application):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
                assert (await c.get(url, headers=env.headers)).status_code == 200
                async with backends.sessionmaker() as session:  # text(): invisible to the ORM events
                    await session.execute(text('UPDATE "user" SET is_active = false WHERE email = :e'),
                                          {"e": env.creds.user_email})
                    await session.commit()
                assert (await c.get(url, headers=env.headers)).status_code == 200  # still cached
                await asyncio.sleep(0.35)
                assert (await c.get(url, headers=env.headers)).status_code == 403

    async def test_disabled_with_zero_ttl(self, settings, backends, env: TestEnv):
        s = settings.model_copy(update={"auth_cache_seconds": 0})
        application = create_app(s, backends=backends)
        application.include_router(probe)
        url = f"/api/environments/{env.id}/probe_insights/"
        from app.auth import AUTH_CACHE

        AUTH_CACHE.invalidate()
        async with application.router.lifespan_context(application):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
                assert (await c.get(url, headers=env.headers)).status_code == 200
                with sql_statements(backends) as seen:
                    assert (await c.get(url, headers=env.headers)).status_code == 200
        assert len(seen) == 3  # key, environment, membership

    async def test_last_used_at_written_once_a_minute(self, pclient, env: TestEnv, backends):
        from sqlalchemy import select

        from app import clock
        from app.models import PersonalAPIKey

        key = await env.make_key(["*"])
        url = f"/api/environments/{env.id}/probe_insights/"

        async def last_used():
            async with backends.sessionmaker() as session:
                return await session.scalar(select(PersonalAPIKey.last_used_at)
                                            .where(PersonalAPIKey.lookup_prefix == key[:12]))

        try:
            clock.freeze("2024-01-01T00:00:00Z")
            await pclient.get(url, headers=bearer(key))
            first = await last_used()
            clock.freeze("2024-01-01T00:00:30Z")
            await pclient.get(url, headers=bearer(key))
            assert await last_used() == first  # within the minute: not written (cached or not)
            clock.freeze("2024-01-01T00:02:00Z")
            await pclient.get(url, headers=bearer(key))
            assert (await last_used()).isoformat().startswith("2024-01-01T00:02:00")
        finally:
            clock.freeze(None)

    async def test_environment_change_through_the_api_applies_at_once(self, client, env: TestEnv):
        url = f"/api/environments/{env.id}/"
        assert (await client.get(url, headers=env.headers)).json()["timezone"] == "UTC"
        r = await client.patch(url, json={"timezone": "Europe/Paris"}, headers=env.headers)
        assert r.status_code == 200 and r.json()["timezone"] == "Europe/Paris"
        assert (await client.get(url, headers=env.headers)).json()["timezone"] == "Europe/Paris"


class TestLocalCacheLoad:
    """`LocalCache.load`: one loader for concurrent misses of an entry, nothing shared that was not stored."""

    async def test_concurrent_misses_run_one_loader(self):
        import asyncio

        from app.auth import LocalCache

        cache, calls = LocalCache(), []

        async def loader():
            calls.append(1)
            await asyncio.sleep(0.02)
            value = ("v", len(calls))
            cache.put("k", 1, value, ttl=5, epoch=cache.epoch)
            return value

        values = await asyncio.gather(*[cache.load("k", 1, loader) for _ in range(5)])
        assert len(calls) == 1 and values == [("v", 1)] * 5
        assert await cache.load("k", 1, loader) == ("v", 1) and len(calls) == 1  # cached now

    async def test_failures_and_refused_values_are_not_shared(self):
        import asyncio

        from app.auth import LocalCache

        cache, calls = LocalCache(), []

        async def failing():
            calls.append(1)
            await asyncio.sleep(0.01)
            raise RuntimeError("boom")

        results = await asyncio.gather(*[cache.load("k", 1, failing) for _ in range(3)], return_exceptions=True)
        assert len(calls) == 3 and all(isinstance(r, RuntimeError) for r in results)

        calls.clear()

        async def invalidated_meanwhile():
            calls.append(1)
            epoch = cache.epoch
            await asyncio.sleep(0.01)
            if len(calls) == 1:
                cache.invalidate()  # a write committed while the first loader read
            cache.put("k", 2, len(calls), ttl=5, epoch=epoch)
            return len(calls)

        values = await asyncio.gather(*[cache.load("k", 2, invalidated_meanwhile) for _ in range(3)])
        assert values[0] == 1 and len(calls) == 3  # the waiters read again themselves

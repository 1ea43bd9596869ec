"""Every error the service can produce uses the §1.6 envelope."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter

from app.main import create_app
from tests.conftest import TestEnv

boom = APIRouter()


@boom.get("/api/boom/")
async def explode() -> dict:
    raise RuntimeError("kaboom")


@pytest.fixture(scope="module")
async def small_app(settings, backends):
    s = settings.model_copy(update={"max_body_bytes": 2048})
    application = create_app(s, backends=backends)
    application.include_router(boom)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def sclient(small_app):
    transport = httpx.ASGITransport(app=small_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def envelope_keys(body: dict) -> set[str]:
    return set(body)


class TestEnvelope:
    async def test_unknown_route(self, client):
        r = await client.get("/api/nothing-here/")
        assert r.status_code == 404
        assert r.json() == {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}

    async def test_method_not_allowed(self, client, env: TestEnv):
        r = await client.put(f"/api/environments/{env.id}/", headers=env.headers, json={})
        assert r.status_code == 405
        assert r.json() == {"type": "invalid_request", "code": "method_not_allowed",
                            "detail": 'Method "PUT" not allowed.', "attr": None}

    async def test_malformed_json(self, client, env: TestEnv):
        r = await client.post("/api/environments/", headers={**env.headers, "Content-Type": "application/json"},
                              content=b"{not json")
        assert r.status_code == 400
        assert r.json()["type"] == "invalid_request" and r.json()["code"] == "parse_error"
        assert r.json()["detail"].startswith("JSON parse error")

    async def test_unsupported_media_type(self, client, env: TestEnv):
        r = await client.post("/api/environments/", headers={**env.headers, "Content-Type": "text/plain"},
                              content=b"name=x")
        assert r.status_code == 415
        assert r.json() == {"type": "invalid_request", "code": "unsupported_media_type",
                            "detail": 'Unsupported media type "text/plain" in request.', "attr": None}

    async def test_body_too_large_by_content_length(self, sclient, env: TestEnv):
        r = await sclient.post("/api/environments/", headers=env.headers, json={"name": "x" * 5000})
        assert r.status_code == 413
        assert r.json()["type"] == "invalid_request" and r.json()["code"] == "request_too_large"

    async def test_body_too_large_when_streamed(self, sclient, env: TestEnv):
        async def chunks():
            for _ in range(10):
                yield b" " * 500

        r = await sclient.post("/api/environments/", headers={**env.headers, "Content-Type": "application/json"},
                               content=chunks())
        assert r.status_code == 413

    async def test_server_error(self, sclient):
        r = await sclient.get("/api/boom/")
        assert r.status_code == 500
        assert r.json() == {"type": "server_error", "code": "error", "detail": "A server error occurred.",
                            "attr": None}

    async def test_only_first_validation_error(self, client, env: TestEnv):
        r = await client.post("/api/environments/", headers=env.headers,
                              json={"timezone": "Nope/Nope", "week_start_day": 9})
        assert r.status_code == 400
        body = r.json()
        assert set(body) == {"type", "code", "detail", "attr"}
        assert isinstance(body["attr"], str)

    async def test_integer_error_detail(self, client, env: TestEnv):
        r = await client.patch(f"/api/environments/{env.id}/", headers=env.headers, json={"week_start_day": "abc"})
        assert r.json() == {"type": "validation_error", "code": "invalid_input",
                            "detail": "A valid integer is required.", "attr": "week_start_day"}

    async def test_max_length(self, client, env: TestEnv):
        r = await client.patch(f"/api/environments/{env.id}/", headers=env.headers, json={"name": "n" * 201})
        assert r.json() == {"type": "validation_error", "code": "max_length",
                            "detail": "Ensure this field has no more than 200 characters.", "attr": "name"}

    async def test_request_id_and_security_headers(self, client):
        r = await client.get("/_health", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        assert r.headers["x-content-type-options"] == "nosniff"
        r = await client.get("/_health", headers={"X-Request-ID": "bad id with spaces"})
        assert r.headers["x-request-id"] != "bad id with spaces"


class TestDatabaseRefusals:
    """Values PostgreSQL cannot store are the client's error (400 envelope), never a 500. Found by
    the abuse checks of issue 9: a NUL in a name, a page number past bigint."""

    @pytest.mark.parametrize("path,method", [("insights/", "POST"), ("dashboards/", "POST"), ("", "PATCH")])
    async def test_nul_in_body_text(self, client, env: TestEnv, path, method):
        r = await client.request(method, f"/api/environments/{env.id}/{path}", headers=env.headers,
                                 json={"name": "a\u0000b"})
        assert r.status_code == 400, r.text
        assert r.json() == {"type": "validation_error", "code": "invalid_input",
                            "detail": "Text may not contain NUL (\\u0000) characters.", "attr": None}

    async def test_nul_in_query_and_path(self, client, env: TestEnv):
        for url in ("property_definitions/?search=%00", "insights/?short_id=%00", "insights/%00/"):
            r = await client.get(f"/api/environments/{env.id}/{url}", headers=env.headers)
            assert r.status_code == 400 and r.json()["type"] == "validation_error", (url, r.text)

    async def test_out_of_range_number(self, client, env: TestEnv):
        r = await client.get(f"/api/environments/{env.id}/insights/activity/?limit=99999999999999999999",
                             headers=env.headers)
        assert r.status_code == 400
        assert r.json()["detail"] == "A value is out of the supported range."

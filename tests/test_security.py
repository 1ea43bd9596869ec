"""Security properties around every request (issue 9): API keys never reach the logs, security
headers are on error responses too, and CORS is granted to the capture endpoints only."""

from __future__ import annotations

import json
import logging
import signal

import httpx
import pytest
from fastapi import APIRouter

from app.main import create_app
from app.middleware import SECURITY_HEADERS
from tests.conftest import TestEnv

boom = APIRouter()


@boom.get("/api/security-boom/")
async def explode() -> dict:
    raise RuntimeError("kaboom")


@pytest.fixture(scope="module")
async def boom_app(settings, backends):
    """The real app plus one route that fails unexpectedly: the only way to see a genuine 500."""
    # No second in-process worker: the session app runs one, and stopping another takes seconds.
    application = create_app(settings.model_copy(update={"inprocess_worker": False}), backends=backends)
    application.include_router(boom)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def bclient(boom_app):
    transport = httpx.ASGITransport(app=boom_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def _everything_logged(records: list[logging.LogRecord]) -> str:
    """Message, structured extras and tracebacks of every record: what any formatter could print."""
    out = []
    for record in records:
        if record.name.startswith(("httpx", "httpcore")):
            continue  # the test's own HTTP client, which logs the URLs it requests
        out.append(record.getMessage())
        out.append(json.dumps(record.__dict__, default=str))
        if record.exc_info:
            out.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(out)


class TestKeysNeverLogged:
    async def test_authenticated_and_failing_requests(self, client, env: TestEnv, caplog):
        scoped = await env.make_key(["feature_flag:read"])
        api = f"/api/environments/{env.id}"
        wrong = env.key[:-4] + "zzzz"  # a near miss of a real key, also never to be logged
        with caplog.at_level(logging.DEBUG):
            for key in (env.key, scoped, wrong):
                h = {"Authorization": f"Bearer {key}"}
                await client.get(f"{api}/insights/", headers=h)                        # 200 / 403
                await client.get(f"{api}/elements/", headers=h)                        # 200 / 401 / 403
                await client.post(f"{api}/insights/", headers=h, json={"query": {"kind": "Nope"}})  # 400
                await client.get(f"{api}/insights/999999999/", headers=h)              # 404
                await client.get(f"/api/environments/2147483647/", headers=h)          # unknown environment
                await client.post(f"{api}/insights/", headers={**h, "Content-Type": "text/plain"}, content="x")
                # The fallbacks of §1.3: the key in the query string and in the body.
                await client.get(f"{api}/insights/?personal_api_key={key}")
                await client.post(f"{api}/insights/", json={"personal_api_key": key, "name": 5})
        logged = _everything_logged(caplog.records)
        assert caplog.records, "nothing was logged: the assertion below would be empty"
        for key in (env.key, scoped, wrong):
            assert key not in logged
            assert key[4:20] not in logged  # not even a large slice of the secret part

    async def test_server_error(self, bclient, env: TestEnv, caplog):
        with caplog.at_level(logging.DEBUG):
            r = await bclient.get(f"/api/security-boom/?personal_api_key={env.key}", headers=env.headers)
        assert r.status_code == 500
        logged = _everything_logged(caplog.records)
        assert "kaboom" in logged  # the failure itself is logged, with its traceback
        assert env.key not in logged


def _has_security_headers(r: httpx.Response) -> bool:
    return all(r.headers.get(name.decode()) == value.decode() for name, value in SECURITY_HEADERS)


class TestSecurityHeaders:
    async def test_on_every_kind_of_error(self, client, app, env: TestEnv):
        api = f"/api/environments/{env.id}"
        responses = [
            await client.get("/no/such/route"),                                         # 404 routing
            await client.get(f"{api}/elements/"),                                        # 401 + WWW-Authenticate
            await client.get(f"{api}/insights/"),                                        # 403 not authenticated
            await client.post(f"{api}/insights/", headers=env.headers, json={"query": {"kind": "Nope"}}),  # 400
            await client.post(f"{api}/insights/", headers=env.headers, content=b"{nope"),     # 400 parse error
            await client.delete(f"{api}/insights/1/", headers=env.headers),              # 405 empty body
            await client.post(f"{api}/insights/", headers={**env.headers, "Content-Type": "text/plain"},
                              content="x"),                                              # 415 from middleware
            await client.post(f"{api}/insights/", headers={**env.headers, "Content-Type": "application/json"},
                              content=b" " * (app.state.settings.max_body_bytes + 1)),   # 413 from middleware
            await client.post("/e/", content=b"not json"),                               # capture 400
        ]
        assert sorted(r.status_code for r in responses) == [400, 400, 400, 401, 403, 404, 405, 413, 415]
        assert [r.status_code for r in responses if not _has_security_headers(r)] == []
        assert all(r.headers.get("x-request-id") for r in responses)

    async def test_on_successful_responses(self, client, env: TestEnv):
        api = f"/api/environments/{env.id}"
        responses = [
            await client.get("/_health"),
            await client.get("/openapi.json"),
            await client.get(f"{api}/insights/", headers=env.headers),
            await client.get(f"{api}/elements/", headers=env.headers),
            await client.post("/batch/", json={"api_key": env.creds.project_api_key,
                                               "batch": [{"event": "headers", "distinct_id": "u1"}]}),
            await client.post("/e/?beacon=1", json={"token": env.creds.project_api_key, "event": "headers",
                                                    "distinct_id": "u1"}),            # 204, empty body
            await client.options("/e/", headers={"Origin": "https://site.example"}),
        ]
        assert sorted({r.status_code for r in responses}) == [200, 204]
        assert [str(r.url) for r in responses if not _has_security_headers(r)] == []
        assert all("server" not in r.headers for r in responses)

    async def test_on_server_error(self, bclient, env: TestEnv):
        r = await bclient.get("/api/security-boom/", headers={"X-Request-ID": "boom-1"})
        assert r.status_code == 500
        assert r.json()["type"] == "server_error"
        assert _has_security_headers(r)
        assert r.headers.get("x-request-id") == "boom-1"


class TestCors:
    ORIGIN = {"Origin": "https://evil.example"}

    @pytest.mark.parametrize("path", ["/e/", "/batch/", "/i/v0/e/", "/i/v1/analytics/events/", "/flags/", "/s/"])
    async def test_capture_endpoints_allow_any_origin(self, client, path):
        r = await client.options(path, headers={**self.ORIGIN, "Access-Control-Request-Method": "POST"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://evil.example"
        # Errors of capture carry CORS too, or browsers would hide them from the SDK.
        r = await client.post(path, headers=self.ORIGIN, content=b"not json")
        assert r.headers.get("access-control-allow-origin") == "https://evil.example"

    async def test_api_routes_grant_no_cross_origin_access(self, client, env: TestEnv):
        api = f"/api/environments/{env.id}"
        responses = [
            await client.get(f"{api}/insights/", headers={**self.ORIGIN, **env.headers}),
            await client.get(f"{api}/insights/", headers=self.ORIGIN),
            await client.options(f"{api}/insights/", headers={**self.ORIGIN, "Access-Control-Request-Method": "GET",
                                                              "Access-Control-Request-Headers": "authorization"}),
            await client.get("/api/environments/", headers={**self.ORIGIN, **env.headers}),
            await client.get("/_health", headers=self.ORIGIN),
        ]
        assert responses[0].status_code == 200
        for r in responses:
            assert not [h for h in r.headers if h.lower().startswith("access-control-")], (r.request.url, r.headers)


class TestLiveServer:
    """`python -m app serve` as deployed: uvicorn's own logging and headers are in play here, not
    in the in-process tests above."""

    @pytest.fixture(scope="class")
    def served(self):
        import shutil
        import subprocess
        import tempfile
        from pathlib import Path

        from tests.live_server import ROOT, free_port, serve_command, serve_env, wait_ready

        data_dir = Path(tempfile.mkdtemp(prefix="tally-security-"))
        port = free_port()
        log_path = data_dir / "server.log"
        with log_path.open("w") as log_file:
            proc = subprocess.Popen(serve_command(port), cwd=ROOT, env=serve_env(data_dir, APP_LOG_LEVEL="DEBUG"),
                                    stdout=log_file, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc, output=log_path.read_text)
            creds = json.loads((data_dir / "credentials.json").read_text())
            yield base, creds, log_path, proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            shutil.rmtree(data_dir, ignore_errors=True)

    def test_headers(self, served):
        base, creds, log_path, proc = served
        api = f"{base}/api/environments/{creds['environment_id']}"
        origin = {"Origin": "https://elsewhere.example"}
        with httpx.Client(timeout=30) as c:
            for r in (c.get(f"{api}/insights/", headers={"Authorization": f"Bearer {creds['personal_api_key']}", **origin}),
                      c.get(f"{base}/_health", headers=origin), c.get(f"{base}/nope"),
                      c.post(f"{base}/e/", content=b"bad", headers=origin)):
                assert "server" not in r.headers, r.headers  # no `Server: uvicorn` (version) banner
                assert _has_security_headers(r)
                cors = r.headers.get("access-control-allow-origin")
                assert cors == ("https://elsewhere.example" if r.url.path == "/e/" else None), (r.url, cors)

    def test_keys_never_in_server_output(self, served):
        base, creds, log_path, proc = served
        from tests.live_server import serve_env
        from tests.test_cli import _run

        # Not the first-start key: `serve` prints that one on purpose (ARCHITECTURE.md contract).
        out = _run(["bootstrap", "--json"], serve_env(log_path.parent))
        assert out.returncode == 0, out.stderr
        fresh = json.loads(out.stdout)
        key, env_id = fresh["personal_api_key"], fresh["environment_id"]
        api = f"{base}/api/environments/{env_id}"
        wrong = key[:-4] + "zzzz"
        with httpx.Client(timeout=30) as c:
            for k in (key, wrong):
                c.get(f"{api}/insights/", headers={"Authorization": f"Bearer {k}"})
                c.get(f"{api}/insights/?personal_api_key={k}")
                c.get(f"{api}/elements/?personal_api_key={k}&limit=5")
                c.post(f"{api}/insights/", json={"personal_api_key": k, "query": {"kind": "Nope"}})
                c.post(f"{api}/query/", json={"personal_api_key": k, "query": {"kind": "TrendsQuery", "series": []}})
                c.get(f"{base}/no/such/route/?personal_api_key={k}")
                c.post(f"{api}/query/?personal_api_key={k}", content=b"[" * 100,
                       headers={"Content-Type": "application/json"})
        proc.send_signal(signal.SIGTERM)  # stop (last test of the class): every line is in the file now
        proc.wait(timeout=60)
        output = log_path.read_text()
        assert '"request"' in output, output[-2000:]  # the access log did run (JSON lines)
        for k in (key, wrong):
            assert k not in output
            assert k[4:20] not in output

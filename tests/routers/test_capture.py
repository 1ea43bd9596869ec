"""Capture endpoints over HTTP (ASGI), with rows asserted in ClickHouse."""

from __future__ import annotations

import base64
import gzip
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import orjson
import pytest

from app import clock
from app.ingestion import metrics
from tests.ingestion.helpers import count, event, events, gz

ORIGIN = "https://app.example.com"


@pytest.fixture
def frozen():
    at = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    clock.freeze(at)
    yield at
    clock.freeze(None)


def envelope(env, *evs, **extra):
    return {"api_key": env.creds.project_api_key, "batch": list(evs), **extra}


class TestPaths:
    @pytest.mark.parametrize("path", ["/batch", "/batch/", "/e", "/e/", "/i/v0/e/", "/capture/", "/track",
                                      "/engage/", "/capture?ip=1&_=1767225600000&ver=1.2"])
    async def test_every_v0_path_stores(self, client, env, backends, path):
        r = await client.post(path, json=envelope(env, event("p")), headers={"Origin": ORIGIN})
        assert r.status_code == 200 and r.json() == {"status": 1}
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert r.headers["access-control-allow-credentials"] == "true"
        assert await count(backends.clickhouse, env.id) == 1

    @pytest.mark.parametrize("path", ["/batch/", "/e", "/s/", "/flags/", "/i/v1/analytics/events",
                                      "/array/phc_abc/config"])
    async def test_options_preflight(self, client, path):
        r = await client.options(path, headers={"Origin": ORIGIN, "Access-Control-Request-Headers": "x-foo"})
        assert r.status_code == 200 and r.json() == {"status": 1}
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert r.headers["access-control-allow-headers"] == "x-foo"

    async def test_replay_accepted_and_discarded(self, client):
        r = await client.post("/s/", content=b"anything")
        assert r.status_code == 200 and r.json() == {"status": 1}

    async def test_config_and_flags(self, client):
        r = await client.get("/array/phc_abc/config")
        assert r.json()["token"] == "phc_abc" and r.json()["elementsChainAsString"] is True
        r = await client.post("/flags/?v=2&config=true", content=b"{}")
        body = r.json()
        assert body["featureFlags"] == {} and body["flags"] == {} and body["errorsWhileComputingFlags"] is False
        assert (await client.post("/decide/", content=b"{}")).status_code == 200

    @pytest.mark.parametrize("path", ["/flags/?v=2&config=true", "/decide/?v=3"])
    async def test_flags_reads_the_token_from_the_body(self, client, path):
        # posthog-js sends `{token, distinct_id, ...}` gzipped as text/plain (§3.2 observed shape).
        body = gzip.compress(orjson.dumps({"token": "phc_flags", "distinct_id": "d"}))
        r = await client.post(path, content=body, headers={"Content-Type": "text/plain", "Origin": ORIGIN})
        assert r.status_code == 200 and r.json()["token"] == "phc_flags"
        assert r.headers["access-control-allow-origin"] == ORIGIN
        r = await client.post(path, content=base64.b64encode(orjson.dumps({"api_key": "phc_b64"})))
        assert r.json()["token"] == "phc_b64"
        r = await client.post(path, content=b"not json")
        assert r.status_code == 200 and r.json()["token"] == ""

    async def test_beacon_is_204(self, client, env, backends):
        r = await client.post("/e/?beacon=1", json=envelope(env, event()))
        assert r.status_code == 204 and r.content == b""
        assert await count(backends.clickhouse, env.id) == 1


class TestBodies:
    async def test_single_event_with_top_level_api_key(self, client, env, backends):
        r = await client.post("/i/v0/e/", json={**event("single"), "api_key": env.creds.project_api_key})
        assert r.status_code == 200
        assert (await events(backends.clickhouse, env.id, columns="event"))[0][0] == "single"

    async def test_array_with_properties_token(self, client, env, backends):
        evs = [{"event": "a", "properties": {"token": env.creds.project_api_key, "distinct_id": "x"}}] * 2
        assert (await client.post("/e/", json=evs)).status_code == 200
        assert await count(backends.clickhouse, env.id) == 2

    async def test_gzip_without_hint(self, client, env, backends):
        r = await client.post("/e/", content=gz(envelope(env, event())), headers={"Content-Type": "text/plain"})
        assert r.status_code == 200 and await count(backends.clickhouse, env.id) == 1

    async def test_gzip_with_hint(self, client, env, backends):
        r = await client.post("/e/?compression=gzip-js", content=gz([event(properties={"token": env.creds.project_api_key})]))
        assert r.status_code == 200 and await count(backends.clickhouse, env.id) == 1

    async def test_form_base64_and_lz64(self, client, env, backends):
        from lzstring import LZString

        doc = orjson.dumps(envelope(env, event())).decode()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        b64 = base64.b64encode(doc.encode()).decode()
        r = await client.post("/e/", content=f"data={quote(b64)}&compression=base64".encode(), headers=form)
        assert r.status_code == 200
        lz = LZString().compressToBase64(orjson.dumps(envelope(env, event())).decode())
        r = await client.post("/e/", content=f"data={quote(lz)}&compression=lz64".encode(), headers=form)
        assert r.status_code == 200
        assert await count(backends.clickhouse, env.id) == 2

    async def test_get_with_data_param(self, client, env, backends):
        data = base64.b64encode(orjson.dumps({**event(), "api_key": env.creds.project_api_key})).decode()
        assert (await client.get("/e/", params={"data": data})).status_code == 200
        assert await count(backends.clickhouse, env.id) == 1

    async def test_historical_migration_flag(self, client, env, backends):
        r = await client.post("/batch/", json=envelope(env, event(timestamp="2020-05-01T00:00:00Z"),
                                                       historical_migration=True))
        assert r.status_code == 200
        rows = await events(backends.clickhouse, env.id, columns="historical_migration, toString(timestamp)")
        assert rows == [(True, "2020-05-01 00:00:00.000000")]

    async def test_performance_event_only_is_200_and_not_stored(self, client, env, backends):
        r = await client.post("/batch/", json=envelope(env, event("$performance_event")))
        assert r.status_code == 200 and await count(backends.clickhouse, env.id) == 0


class TestErrors:
    async def _rejected(self, client, path, code, status, **kwargs):
        before = metrics.get("capture_requests_rejected_total", code)
        r = await client.post(path, **kwargs)
        assert r.status_code == status, r.text
        body = r.json()
        assert body["code"] == code and body["detail"] and body["attr"] is None
        assert body["type"] in ("validation_error", "authentication_error", "server_error")
        assert metrics.get("capture_requests_rejected_total", code) == before + 1
        return body

    async def test_no_token(self, client):
        body = await self._rejected(client, "/batch/", "missing_token", 401, json={"batch": [event()]})
        assert body["type"] == "authentication_error"

    async def test_unknown_token(self, client):
        await self._rejected(client, "/batch/", "invalid_token", 401, json={"api_key": "phc_nope", "batch": [event()]})

    async def test_personal_key(self, client, env):
        await self._rejected(client, "/batch/", "personal_api_key", 401, json={"api_key": env.key, "batch": [event()]})

    async def test_conflicting_tokens(self, client, env):
        evs = [{**event(), "api_key": env.creds.project_api_key}, {**event(), "api_key": "phc_other"}]
        await self._rejected(client, "/e/", "conflicting_tokens", 401, json=evs)

    async def test_missing_distinct_id_keeps_nothing(self, client, env, backends):
        await self._rejected(client, "/batch/", "missing_distinct_id", 400,
                             json=envelope(env, event(), {"event": "x", "properties": {}}))
        assert await count(backends.clickhouse, env.id) == 0

    async def test_empty_event_name(self, client, env):
        await self._rejected(client, "/batch/", "missing_event_name", 400, json=envelope(env, event("")))

    async def test_bad_uuid(self, client, env):
        await self._rejected(client, "/batch/", "invalid_uuid", 400, json=envelope(env, event(uuid="123")))

    async def test_invalid_json(self, client):
        await self._rejected(client, "/batch/", "invalid_json", 400, content=b"{nope")

    async def test_empty_batch(self, client, env):
        await self._rejected(client, "/batch/", "empty_batch", 400, json=envelope(env))

    async def test_bad_gzip(self, client):
        await self._rejected(client, "/e/", "invalid_compression", 400, content=b"\x1f\x8b\x08garbage")

    async def test_gzip_bomb(self, client):
        bomb = gzip.compress(b" " * (30 * 1024 * 1024))
        await self._rejected(client, "/e/?compression=gzip", "payload_too_large", 413, content=bomb)

    async def test_3mb_body_on_e(self, client, env):
        big = envelope(env, event(properties={"blob": "x" * (3 * 1024 * 1024)}))
        await self._rejected(client, "/e/", "payload_too_large", 413, json=big)

    async def test_event_over_1mb_on_batch(self, client, env):
        big = envelope(env, event(properties={"blob": "x" * (1024 * 1024 + 10)}))
        await self._rejected(client, "/batch/", "event_too_large", 413, json=big)

    async def test_missing_payload(self, client):
        await self._rejected(client, "/e/", "no_data", 400, content=b"")


class TestDedupAndTimestamps:
    async def test_resent_batch_is_stored_once(self, client, env, backends):
        body = envelope(env, event("a"), event("b"), sent_at=clock.now().isoformat())
        assert (await client.post("/batch/", json=body)).status_code == 200
        body["sent_at"] = (clock.now() + timedelta(milliseconds=5)).isoformat()
        assert (await client.post("/batch/", json=body)).status_code == 200
        assert await count(backends.clickhouse, env.id) == 2

    async def test_duplicate_inside_one_batch(self, client, env, backends):
        e = event("a")
        assert (await client.post("/batch/", json=envelope(env, e, e))).status_code == 200
        assert await count(backends.clickhouse, env.id) == 1

    async def test_same_payload_other_uuid_is_distinct(self, client, env, backends):
        e = event("a")
        assert (await client.post("/batch/", json=envelope(env, e, {**e, "uuid": str(uuid.uuid4())}))).status_code == 200
        assert await count(backends.clickhouse, env.id) == 2

    async def test_timestamps(self, client, env, backends, frozen):
        now = frozen
        sent_at = now + timedelta(hours=1)  # client clock 1 h fast
        evs = [event("skewed", timestamp=(sent_at - timedelta(seconds=30)).isoformat()),
               event("offset", offset=5000),
               event("future", timestamp=(now + timedelta(days=2)).isoformat())]
        r = await client.post("/batch/", json=envelope(env, *evs, sent_at=sent_at.isoformat()))
        assert r.status_code == 200
        rows = dict(await events(backends.clickhouse, env.id, columns="event, toString(timestamp)"))
        assert rows["skewed"] == "2026-11-26 11:59:30.000000"
        assert rows["offset"] == "2026-11-26 11:59:55.000000"
        assert rows["future"] == "2026-11-26 12:00:00.000000"


class TestDirectLane:
    """Capture POSTs skip FastAPI's routing (app.main.TallyApp) but keep the request context."""

    async def test_request_id_and_security_headers(self, client, env, backends):
        r = await client.post("/batch/", json=envelope(env, event("lane")), headers={"X-Request-ID": "lane-req-1"})
        assert r.status_code == 200 and r.json() == {"status": 1}
        assert r.headers["x-request-id"] == "lane-req-1"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert await count(backends.clickhouse, env.id) == 1

    async def test_an_unexpected_error_is_the_500_envelope(self, app, client, env):
        ingestion, app.state.ingestion = app.state.ingestion, None  # capture's service is missing
        try:
            r = await client.post("/i/v1/analytics/events", json={"batch": []}, headers={"X-Request-ID": "lane-req-2"})
        finally:
            app.state.ingestion = ingestion
        assert r.status_code == 500
        assert r.json() == {"type": "server_error", "code": "error", "detail": "A server error occurred.",
                            "attr": None}
        assert r.headers["x-request-id"] == "lane-req-2"

    async def test_other_methods_still_take_the_routes(self, client, env):
        r = await client.get("/batch/", params={"data": '{"event": "g", "distinct_id": "d"}',
                                                "api_key": env.creds.project_api_key})
        assert r.status_code == 200 and r.json() == {"status": 1}
        r = await client.put("/batch/", json=envelope(env, event("p")))
        assert r.status_code == 405

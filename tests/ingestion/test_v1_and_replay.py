"""The v1 protocol (per-event results) and a replay of real posthog-js 1.449.2 requests."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from sqlalchemy import update

from app import clock
from app.models import Environment
from tests.conftest import new_env
from tests.ingestion.helpers import count, events

FIXTURES = Path("/work/shared/fixtures/posthog-js-1.449.2/requests.jsonl")
FIXTURE_TOKEN = "phc_fixture_token_0000000000000000000000000"


def v1_headers(token: str, **extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "User-Agent": "posthog-test/1.0",
        "PostHog-Sdk-Info": "posthog-node/5.1.0", "PostHog-Attempt": "1",
        "PostHog-Request-Id": str(uuid.uuid4()), "PostHog-Request-Timestamp": clock.now().isoformat(), **extra,
    }


def v1_event(**overrides):
    return {"event": "v1_event", "uuid": str(uuid.uuid4()), "distinct_id": "v1-user",
            "timestamp": clock.now().isoformat(), "session_id": "s-1", "window_id": "w-1",
            "options": {"process_person_profile": True}, "properties": {"plan": "pro"}, **overrides}


class TestV1:
    async def test_mixed_batch_keeps_valid_events(self, client, env, backends):
        good, bad_did, empty_name = v1_event(), v1_event(distinct_id=""), v1_event(event="")
        body = {"created_at": clock.now().isoformat(), "batch": [good, bad_did, empty_name]}
        headers = v1_headers(env.creds.project_api_key)
        r = await client.post("/i/v1/analytics/events", content=orjson.dumps(body), headers=headers)
        assert r.status_code == 200
        assert r.headers["posthog-request-id"] == headers["PostHog-Request-Id"]
        results = r.json()["results"]
        assert results[good["uuid"]] == {"result": "ok"}
        assert results[bad_did["uuid"]]["result"] == "drop"
        assert results[empty_name["uuid"]]["result"] == "drop"
        rows = await events(backends.clickhouse, env.id, columns="event, properties")
        assert len(rows) == 1
        props = json.loads(rows[0][1])
        assert props["$session_id"] == "s-1" and props["$window_id"] == "w-1"
        assert props["$lib"] == "posthog-node" and props["$lib_version"] == "5.1.0"

    async def test_oversize_event_dropped_others_kept(self, client, env, backends):
        big, good = v1_event(properties={"blob": "x" * (1024 * 1024 + 1)}), v1_event()
        body = orjson.dumps({"created_at": "x", "batch": [big, good]})
        r = await client.post("/i/v1/analytics/events", content=body, headers=v1_headers(env.creds.project_api_key))
        assert r.status_code == 200
        assert r.json()["results"][big["uuid"]]["result"] == "drop"
        assert r.json()["results"][good["uuid"]] == {"result": "ok"}
        assert await count(backends.clickhouse, env.id) == 1

    async def test_gzip_and_resend(self, client, env, backends):
        body = gzip.compress(orjson.dumps({"created_at": "x", "batch": [v1_event(), v1_event()]}))
        headers = v1_headers(env.creds.project_api_key, **{"Content-Encoding": "gzip"})
        for attempt in ("1", "2"):
            headers["PostHog-Attempt"] = attempt
            r = await client.post("/i/v1/analytics/events/", content=body, headers=headers)
            assert r.status_code == 200 and len(r.json()["results"]) == 2
        assert await count(backends.clickhouse, env.id) == 2

    @pytest.mark.parametrize("header", ["PostHog-Sdk-Info", "PostHog-Attempt", "PostHog-Request-Id",
                                        "PostHog-Request-Timestamp"])
    async def test_missing_header_is_400_naming_it(self, client, env, header):
        headers = v1_headers(env.creds.project_api_key)
        del headers[header]
        body = orjson.dumps({"created_at": "x", "batch": [v1_event()]})
        r = await client.post("/i/v1/analytics/events", content=body, headers=headers)
        assert r.status_code == 400 and r.json()["attr"] == header.lower()

    async def test_bad_auth_is_401(self, client):
        r = await client.post("/i/v1/analytics/events", content=b"{}", headers=v1_headers("phc_unknown"))
        assert r.status_code == 401

    async def test_wrong_content_type_is_415(self, client, env):
        headers = v1_headers(env.creds.project_api_key, **{"Content-Type": "text/plain"})
        r = await client.post("/i/v1/analytics/events", content=b"{}", headers=headers)
        assert r.status_code == 415


class TestPosthogJsReplay:
    async def test_real_browser_requests(self, client, backends):
        env = await new_env(backends)
        async with backends.sessionmaker() as session:
            await session.execute(update(Environment).where(Environment.id == env.id).values(api_token=FIXTURE_TOKEN))
            await session.commit()
        clock.freeze(datetime(2026, 11, 26, 11, 34, 0, tzinfo=timezone.utc))
        try:
            for line in FIXTURES.read_text().splitlines():
                req = json.loads(line)
                body = base64.b64decode(req["body_b64"]) if req.get("body_b64") else b""
                r = await client.request(req["method"], req["path"], content=body, headers=req["headers"])
                assert r.status_code == 200, (req["path"], r.text)
                assert r.headers["access-control-allow-origin"] == req["headers"]["Origin"]
        finally:
            clock.freeze(None)
        rows = await events(backends.clickhouse, env.id, columns="event, elements_chain, person_mode")
        names = sorted(r[0] for r in rows)
        assert names == sorted(["$pageview"] + ["$autocapture"] * 6 + ["$rageclick", "$identify", "custom_event"])
        chains = [r[1] for r in rows if r[0] in ("$autocapture", "$rageclick")]
        assert all(chains) and chains[0].startswith(("a.btn.btn-primary:", "button.buy.hover:bg-red:"))
        # posthog-js is "identified only": anonymous events personless, the identify merges them.
        modes = {r[0]: r[2] for r in rows}
        assert modes["$pageview"] == "propertyless" and modes["custom_event"] == "full"
        from tests.ingestion.helpers import unique_persons

        assert await unique_persons(backends.clickhouse, env.id) == 1

"""The official posthog-python SDK against a live HTTP server on a loopback port.

The server is the real app under uvicorn, serving in this test session's event loop on the
session's backends, so rows are asserted through the same ClickHouse executor. The SDK is
synchronous (its own consumer thread plus blocking `flush`), so it runs in worker threads.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import pytest
import uvicorn
from posthog import Posthog

from app.main import create_app
from tests.conftest import new_env
from tests.ingestion.helpers import count, events, person_of, unique_persons

MODES = {
    "v0": {},
    "v0-gzip": {"gzip": True},
    "v1": {"capture_mode": "v1"},
    "v1-gzip": {"capture_mode": "v1", "capture_compression": "gzip"},
}


@pytest.fixture(scope="module")
async def live_url(settings, backends):
    app = create_app(settings, backends=backends)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on",
                                           access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def sdk(token: str, url: str, errors: list, **options) -> Posthog:
    return Posthog(token, host=url, on_error=lambda exc, batch: errors.append(exc), max_retries=0,
                   flush_interval=0.05, **options)


async def run_sdk(client: Posthog) -> None:
    await asyncio.to_thread(client.flush)
    await asyncio.to_thread(client.shutdown)


@pytest.mark.parametrize("mode", list(MODES))
async def test_sdk_capture_persons_groups(live_url, backends, mode):
    env = await new_env(backends)
    errors: list = []
    client = sdk(env.creds.project_api_key, live_url, errors, **MODES[mode])

    def script() -> None:
        for i in range(200):
            client.capture("page_viewed", distinct_id=f"user-{i % 10}", properties={"n": i, "path": f"/p/{i % 3}"})
        client.capture("anon_action", distinct_id="anon-xyz", properties={"a": 1})
        client.set(distinct_id="user-1", properties={"plan": "pro"})
        client.set_once(distinct_id="user-1", properties={"first_seen": "2026-01-01"})
        client.capture("$identify", distinct_id="user-1", properties={"$anon_distinct_id": "anon-xyz"})
        client.alias(previous_id="user-2", distinct_id="user-2-new")
        client.group_identify("company", "acme", {"employees": 10}, distinct_id="user-3")
        client.capture("grouped", distinct_id="user-3", groups={"company": "acme"})
        client.capture("no_person")  # random distinct id, personless

    await asyncio.to_thread(script)
    await run_sdk(client)
    assert errors == []
    ch = backends.clickhouse
    assert await count(ch, env.id) == 200 + 8
    rows = await events(ch, env.id, columns="event, distinct_id, properties, person_mode")
    names = [r[0] for r in rows]
    assert names.count("page_viewed") == 200 and names.count("$create_alias") == 1
    assert names.count("$set") == 1 and names.count("$set_once") == 1 and names.count("$groupidentify") == 1
    by_event = {r[0]: r for r in rows}
    assert json.loads(by_event["page_viewed"][2])["$lib"] == "posthog-python"
    assert by_event["no_person"][3] == "propertyless"
    assert json.loads(by_event["grouped"][2])["$group_0"] == "acme"
    # identify merged the anonymous person into user-1's; alias joined user-2's ids
    assert await person_of(ch, env.id, "anon-xyz") == await person_of(ch, env.id, "user-1")
    assert await person_of(ch, env.id, "user-2") == await person_of(ch, env.id, "user-2-new")
    assert await unique_persons(ch, env.id) == 11  # user-0..9 (anon merged) + the personless id
    result = await ch.execute(
        "SELECT argMax(properties, version) FROM person WHERE team_id = {t:Int64} AND id = {p:UUID} GROUP BY id",
        {"t": env.id, "p": await person_of(ch, env.id, "user-1")})
    props = json.loads(result.rows[0][0])
    assert props["plan"] == "pro" and props["first_seen"] == "2026-01-01"


@pytest.mark.parametrize("mode", ["v0", "v1"])
async def test_sdk_retry_with_same_uuid_is_stored_once(live_url, backends, mode):
    env = await new_env(backends)
    errors: list = []
    event_uuid = str(uuid.uuid4())
    for _ in range(2):  # two separate deliveries of the same event, as an SDK retry would be
        client = sdk(env.creds.project_api_key, live_url, errors, **MODES[mode])
        await asyncio.to_thread(client.capture, "once", distinct_id="u", uuid=event_uuid)
        await run_sdk(client)
    assert errors == []
    assert await count(backends.clickhouse, env.id) == 1

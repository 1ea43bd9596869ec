"""Event rows (app/ingestion/rows.py): the properties text reaches ClickHouse exactly as serialised."""

from __future__ import annotations

import json

import orjson

from tests.ingestion.helpers import event, events

HOSTILE = {
    "quote": 'say "hi" \\ back\\slash',
    "lines": "a\nb\r\nc\t\u0000nul",
    "unicode": "naïve 日本語 😀 \u2028",
    "nested": {"list": [1, 2.5, None, True, {"deep": ["x"]}], "empty": {}},
    "sql": "'; DROP TABLE events; --",
    "placeholder": "{p0:String}",
}


async def test_properties_text_is_stored_as_serialised(client, env, backends):
    r = await client.post("/batch/", json={"api_key": env.creds.project_api_key,
                                           "batch": [event("hostile", properties=dict(HOSTILE))]})
    assert r.status_code == 200
    [(name, _, stored)] = await events(backends.clickhouse, env.id)
    assert name == "hostile"
    parsed = orjson.loads(stored)
    for key, value in HOSTILE.items():
        assert parsed[key] == value
    assert stored == orjson.dumps(parsed).decode()  # compact, as orjson writes it


async def test_integers_beyond_64_bits_keep_their_digits(client, env, backends):
    body = ('{"api_key": "%s", "batch": [{"event": "big", "distinct_id": "d", "properties": {"n": %d}}]}'
            % (env.creds.project_api_key, 2**70))
    r = await client.post("/batch/", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    [(_, _, stored)] = await events(backends.clickhouse, env.id)
    assert json.loads(stored)["n"] == 2**70

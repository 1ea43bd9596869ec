"""Fixtures for HogQL tests: one dataset inserted into `env`, a different one into `other_env`, so
every test can check that nothing of the other environment shows up."""

from __future__ import annotations

from typing import Any

import pytest

from app import clock
from tests.query_engine.helpers import insert_events, insert_person

NOW = "2024-01-10T12:00:00Z"
# Environment A (the caller). Timestamps UTC; the project timezone is set per test when it matters.
EVENTS_A = [
    {"event": "$pageview", "distinct_id": "u1", "timestamp": "2024-01-01T10:00:00Z",
     "properties": {"$browser": "Chrome", "price": 10, "$session_id": "s1", "nested": {"a": {"b": "deep"}},
                    "$current_url": "https://x.io/a"},
     "person_properties": {"email": "u1@x.io", "plan": "pro"}},
    {"event": "$pageview", "distinct_id": "u1", "timestamp": "2024-01-01T10:05:00Z",
     "properties": {"$browser": "Chrome", "price": 20, "$current_url": "https://x.io/b"},
     "person_properties": {"email": "u1@x.io", "plan": "pro"}},
    {"event": "$pageview", "distinct_id": "u2", "timestamp": "2024-01-02T23:30:00Z",
     "properties": {"$browser": "Firefox", "price": 5}, "person_properties": {"email": "u2@x.io", "plan": "free"}},
    {"event": "signup", "distinct_id": "u2", "timestamp": "2024-01-03T08:00:00Z",
     "properties": {"location": "Paris", "price": "7.5"}, "person_properties": {"email": "u2@x.io", "plan": "free"}},
    {"event": "purchase", "distinct_id": "u3", "timestamp": "2024-01-05T12:00:00Z",
     "properties": {"$browser": "Safari", "price": 100, "location": "Berlin"},
     "person_properties": {"email": "u3@y.io", "plan": "pro"}},
]
# Environment B: recognisable markers that must never appear in A's answers.
EVENTS_B = [
    {"event": "secret_b", "distinct_id": "leak", "timestamp": "2024-01-01T10:00:00Z",
     "properties": {"$browser": "LEAK", "price": 999999}, "person_properties": {"email": "leak@b.io"}},
    {"event": "$pageview", "distinct_id": "leak", "timestamp": "2024-01-02T10:00:00Z",
     "properties": {"$browser": "LEAK", "price": 999999}, "person_properties": {"email": "leak@b.io"}},
]


async def seed(ch, env_id: int, other_id: int) -> None:
    await insert_events(ch, env_id, EVENTS_A)
    await insert_person(ch, env_id, ["u1"], {"email": "u1@x.io", "plan": "pro"})
    await insert_person(ch, env_id, ["u2"], {"email": "u2@x.io", "plan": "free"})
    await insert_person(ch, env_id, ["u3"], {"email": "u3@y.io", "plan": "pro"})
    await insert_events(ch, other_id, EVENTS_B)
    await insert_person(ch, other_id, ["leak"], {"email": "leak@b.io"})


@pytest.fixture
async def data(backends, env, other_env):
    await seed(backends.clickhouse, env.id, other_env.id)
    clock.freeze(NOW)
    yield env
    clock.freeze(None)


async def post(client, env, query: dict[str, Any]):
    return await client.post(f"/api/environments/{env.id}/query/", json={"query": query}, headers=env.headers)


async def hogql(client, env, text: str) -> dict[str, Any]:
    r = await post(client, env, {"kind": "HogQLQuery", "query": text})
    assert r.status_code == 200, r.text
    return r.json()

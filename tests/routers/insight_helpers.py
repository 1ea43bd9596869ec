"""Shared helpers for the insight route tests."""

from __future__ import annotations

from tests.conftest import TestEnv


async def create_insight(client, env: TestEnv, query, **extra) -> dict:
    """POST a named insight with `query` and return its JSON (asserting the 201)."""
    r = await client.post(f"/api/environments/{env.id}/insights/", json={"name": "I", "query": query, **extra},
                          headers=env.headers)
    assert r.status_code == 201, r.text
    return r.json()

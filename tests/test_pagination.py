"""Plain list pagination (spec/API.md §1.7) at the extremes: there is no maximum and no 400, so
values past PostgreSQL's bigint LIMIT/OFFSET must still answer 200 (they were 500s)."""

from __future__ import annotations

import pytest

from tests.conftest import TestEnv

BIG = "99999999999999999999"


@pytest.mark.parametrize("path", ["elements/", "insights/", "dashboards/", "property_definitions/",
                                  "event_definitions/"])
@pytest.mark.parametrize("query", [f"limit={BIG}", f"offset={BIG}", "offset=9223372036854775808"])
async def test_huge_limit_and_offset(client, env: TestEnv, path, query):
    r = await client.get(f"/api/environments/{env.id}/{path}?{query}", headers=env.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next"] is None
    if "offset" in query:
        assert body["results"] == []

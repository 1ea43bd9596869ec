"""Golden tests: query JSON → exact SQL text and parameters (tests/query_engine/trends/golden.json).

Regenerate deliberately after reviewing a compiler change; a diff here means the SQL changed."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.query_engine.scope import Scope
from app.query_engine.trends.runner import TrendsRunner
from app.schemas.query import parse_query

GOLDEN = json.loads((Path(__file__).parent / "golden.json").read_text())
NOW = datetime(2020, 1, 12, 12, tzinfo=timezone.utc)


def _norm(value):
    return value.astimezone(timezone.utc).isoformat() if isinstance(value, datetime) else value


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name):
    case = GOLDEN[name]
    compiled = TrendsRunner(parse_query(case["query"]), Scope(7, "Europe/Berlin", NOW)).compile()[0]
    assert compiled.sql == case["sql"]
    assert {k: _norm(v) for k, v in compiled.params.items()} == case["params"]


async def test_golden_sql_runs(ch_executor):
    for case in GOLDEN.values():
        compiled = TrendsRunner(parse_query(case["query"]), Scope(7, "Europe/Berlin", NOW)).compile()[0]
        await ch_executor.execute(compiled.sql, compiled.params)

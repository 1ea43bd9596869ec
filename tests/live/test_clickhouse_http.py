"""Live round trip against a real ClickHouse server (APP_TEST_CLICKHOUSE_URL); tests/conftest.py
collects this folder only when that variable is set."""

from __future__ import annotations

import os
import uuid

import pytest

from app.query_engine.executor.base import ClickHouseTimeout, ExecuteSettings
from app.query_engine.executor.http import HttpExecutor

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_live_server_round_trip():
    url = os.environ["APP_TEST_CLICKHOUSE_URL"]
    executor = HttpExecutor(
        url,
        os.environ.get("APP_TEST_CLICKHOUSE_USER", "default"),
        os.environ.get("APP_TEST_CLICKHOUSE_PASSWORD", ""),
        "system",
    )
    try:
        assert await executor.ping() is True
        hostile = "a'b\\c\n{p1:String}\t😀"
        result = await executor.execute(
            "SELECT {p0:String}, {p1:Array(String)}, toUInt64(18446744073709551615)",
            {"p0": hostile, "p1": [hostile]},
            query_id=f"tally-live-{uuid.uuid4().hex}",
            settings=ExecuteSettings(max_execution_time=10),
        )
        assert result.rows == [(hostile, [hostile], 18446744073709551615)]
        with pytest.raises(ClickHouseTimeout):
            await executor.execute(
                "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1",
                settings=ExecuteSettings(max_execution_time=1),
            )
    finally:
        await executor.close()

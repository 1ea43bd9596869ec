"""create_executor picks the backend from settings without connecting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from app.query_engine.executor import create_executor
from app.query_engine.executor.chdb import ChdbExecutor
from app.query_engine.executor.http import HttpExecutor
from app.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


class TestCreateExecutor:
    async def test_embedded_by_default(self, tmp_path: Path):
        settings = Settings(data_dir=tmp_path, clickhouse_database="tally_x", chdb_pool_size=4)
        executor = create_executor(settings)
        assert isinstance(executor, ChdbExecutor)
        assert executor.path == str(tmp_path.resolve() / "clickhouse")
        assert executor.database == "tally_x"
        assert executor.pool_size == 4
        await executor.close()  # never opened: must not touch chDB (one path per process)

    async def test_http_when_url_is_set(self):
        settings = Settings(
            clickhouse_url="http://ch:8123/",
            clickhouse_user="reader",
            clickhouse_password=SecretStr("pw"),
            clickhouse_database="analytics",
            clickhouse_cluster="tally_cluster",
        )
        executor = create_executor(settings)
        assert isinstance(executor, HttpExecutor)
        assert executor.url == "http://ch:8123/"
        assert executor.database == "analytics"
        assert executor.readonly is True
        assert executor.cluster == "tally_cluster"
        await executor.close()

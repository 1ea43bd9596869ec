"""Session-wide ClickHouse for tests: one executor, schema created once by the real migrations.

Embedded chDB by default. chDB serves one data path per process at a time, so everything in a
test session must share this executor (or open another executor on the *same* path, e.g. an
app built with `Settings(data_dir=ch_data_dir)`: `create_executor` then points at
`ch_data_dir / "clickhouse"`, the path used here).

With `APP_TEST_CLICKHOUSE_URL` set, tests run against that server instead
(`APP_TEST_CLICKHOUSE_USER`, `_PASSWORD`, `_DATABASE` (default `tally_test`), `_CLUSTER`).
ClickHouse has no rollback: tests isolate themselves with their own `team_id`.

Load with `pytest_plugins = ["tests.clickhouse_fixtures"]` in tests/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from app.clickhouse.migrations import migrate_clickhouse
from app.query_engine.executor.base import ClickHouseExecutor

TEST_DATABASE = "tally"


@pytest.fixture(scope="session")
def ch_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tally-data")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ch_executor(ch_data_dir: Path) -> AsyncIterator[ClickHouseExecutor]:
    url = os.environ.get("APP_TEST_CLICKHOUSE_URL")
    cluster = os.environ.get("APP_TEST_CLICKHOUSE_CLUSTER") or None
    executor: ClickHouseExecutor
    if url:
        from app.query_engine.executor.http import HttpExecutor

        database = os.environ.get("APP_TEST_CLICKHOUSE_DATABASE", "tally_test")
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker:  # parallel workers must not share tables they truncate
            database = f"{database}_{worker}"
        executor = HttpExecutor(
            url,
            os.environ.get("APP_TEST_CLICKHOUSE_USER", "default"),
            os.environ.get("APP_TEST_CLICKHOUSE_PASSWORD", ""),
            database,
            cluster=cluster,
        )
    else:
        from app.query_engine.executor.chdb import ChdbExecutor

        executor = ChdbExecutor(str(ch_data_dir / "clickhouse"), TEST_DATABASE, pool_size=3)
        cluster = None
    await migrate_clickhouse(executor, database=executor.database, cluster=cluster)
    yield executor
    await executor.close()

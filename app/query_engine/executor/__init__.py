"""ClickHouse executors: embedded chDB (default) or a ClickHouse server over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.query_engine.executor.base import (
    ClickHouseCancelled,
    ClickHouseError,
    ClickHouseExecutor,
    ClickHouseTimeout,
    ClickHouseUnavailable,
    ExecuteSettings,
    QueryProgress,
    QueryResult,
)

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = [
    "ClickHouseCancelled",
    "ClickHouseError",
    "ClickHouseExecutor",
    "ClickHouseTimeout",
    "ClickHouseUnavailable",
    "ExecuteSettings",
    "QueryProgress",
    "QueryResult",
    "create_executor",
]


def create_executor(settings: Settings) -> ClickHouseExecutor:
    """chDB under `data_dir/clickhouse` unless `APP_CLICKHOUSE_URL` names a server.

    Nothing connects here: chDB opens on `open()` or first use, httpx on the first request.
    """
    if settings.clickhouse_url is None:
        from app.query_engine.executor.chdb import ChdbExecutor

        return ChdbExecutor(
            str(settings.data_path / "clickhouse"),
            settings.clickhouse_database,
            pool_size=settings.chdb_pool_size,
        )
    from app.query_engine.executor.http import HttpExecutor

    return HttpExecutor(
        settings.clickhouse_url,
        settings.clickhouse_user,
        settings.clickhouse_password.get_secret_value(),
        settings.clickhouse_database,
        cluster=settings.clickhouse_cluster,
    )

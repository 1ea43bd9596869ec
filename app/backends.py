"""Open and close every backend the service uses, embedded or external, in one place.

`serve`, the worker and the test session all go through `Backends.open()`, so the code that runs
against the embedded engines is the code that runs in production.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import migrate
from app.clickhouse.migrations import migrate_clickhouse
from app.db import create_engine, create_sessionmaker
from app.embedded import EmbeddedPostgres, EmbeddedRedis, ensure_data_dir
from app.query_engine.executor import create_executor
from app.query_engine.executor.base import ClickHouseExecutor
from app.settings import Settings

log = logging.getLogger(__name__)


def arq_settings(redis_url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(redis_url)
    settings.conn_retries = 2
    return settings


@dataclass
class Backends:
    settings: Settings
    database_url: str
    redis_url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    clickhouse: ClickHouseExecutor
    redis: aioredis.Redis
    arq: ArqRedis
    embedded_postgres: EmbeddedPostgres | None = None
    embedded_redis: EmbeddedRedis | None = None
    _closed: bool = field(default=False, repr=False)

    @classmethod
    async def open(cls, settings: Settings, *, run_migrations: bool = True) -> "Backends":
        embedded_pg: EmbeddedPostgres | None = None
        embedded_redis: EmbeddedRedis | None = None
        if settings.database_url is None or settings.redis_url is None or settings.embedded_clickhouse:
            ensure_data_dir(settings.data_path)
        try:
            database_url = settings.database_url
            if database_url is None:
                embedded_pg = EmbeddedPostgres(settings.data_path)
                database_url = embedded_pg.start()
            if run_migrations:
                await migrate.upgrade(database_url)
            redis_url = settings.redis_url
            if redis_url is None:
                embedded_redis = EmbeddedRedis(settings.data_path)
                redis_url = embedded_redis.start()
            clickhouse = create_executor(settings)
            if run_migrations:
                await migrate_clickhouse(clickhouse, database=settings.clickhouse_database,
                                         cluster=settings.clickhouse_cluster)
                await clickhouse.recover()
        except BaseException:
            if embedded_redis is not None:
                embedded_redis.stop()
            if embedded_pg is not None:
                embedded_pg.stop()
            raise
        engine = create_engine(database_url, pool_size=settings.db_pool_size)
        redis_client = aioredis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        arq_pool = await create_pool(arq_settings(redis_url))
        return cls(
            settings=settings, database_url=database_url, redis_url=redis_url, engine=engine,
            sessionmaker=create_sessionmaker(engine), clickhouse=clickhouse, redis=redis_client, arq=arq_pool,
            embedded_postgres=embedded_pg, embedded_redis=embedded_redis,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for closer in (self.arq.aclose, self.redis.aclose, self.clickhouse.close, self.engine.dispose):
            try:
                await closer()
            except Exception as exc:  # keep closing the others
                log.warning("closing a backend failed: %s", exc)
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
        if self.embedded_postgres is not None:
            self.embedded_postgres.stop()

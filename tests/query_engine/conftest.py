"""Fixtures for query-engine tests: a Trends runner bound to the test's environment, through the
real query service (PostgreSQL for the environment and property types, chDB for events)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from app import clock
from app.models import Environment
from app.models.definitions import PropertyDefinition
from app.services.query import run_query


class Engine:
    def __init__(self, backends, env_id: int) -> None:
        self.backends = backends
        self.env_id = env_id

    @property
    def ch(self):
        return self.backends.clickhouse

    async def configure(self, **values: Any) -> None:
        async with self.backends.sessionmaker() as session:
            await session.execute(update(Environment).where(Environment.id == self.env_id).values(**values))
            await session.commit()

    async def property_type(self, name: str, property_type: str, type_: int = 1, group_type_index: int = -1) -> None:
        async with self.backends.sessionmaker() as session:
            session.add(PropertyDefinition(environment_id=self.env_id, name=name, type=type_,
                                           group_type_index=group_type_index, property_type=property_type,
                                           is_numerical=property_type == "Numeric"))
            await session.commit()

    async def query(self, query: dict[str, Any], *, now: str | None = None) -> dict[str, Any]:
        if now is not None:
            clock.freeze(now)
        try:
            async with self.backends.sessionmaker() as session:
                env = await session.get(Environment, self.env_id)
                return await run_query(environment=env, query_json=query, clickhouse=self.ch, session=session,
                                       settings=self.backends.settings)
        finally:
            if now is not None:
                clock.freeze(None)

    async def results(self, query: dict[str, Any], *, now: str) -> list[dict[str, Any]]:
        return (await self.query(query, now=now))["results"]


@pytest.fixture
async def engine(backends, env) -> Engine:
    return Engine(backends, env.id)


def trends(*series: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"kind": "TrendsQuery", "series": list(series), **fields}


def events(event: str | None = "$pageview", **fields: Any) -> dict[str, Any]:
    return {"kind": "EventsNode", "event": event, **fields}

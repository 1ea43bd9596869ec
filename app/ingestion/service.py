"""Ingestion wiring owned by the app lifespan: the writer and the project-token cache."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.ingestion.errors import CaptureUnauthorized
from app.ingestion.ratelimit import CaptureLimiter
from app.ingestion.writer import IngestionWriter
from app.models import Environment
from app.query_engine.executor.base import ClickHouseExecutor

TOKEN_TTL_SECONDS = 30.0
MAX_TOKEN_LENGTH = 64


def normalize_token(raw: object) -> str:
    """§4.1: trimmed, non-empty, ≤ 64 ASCII chars without NUL, not a personal key."""
    if not isinstance(raw, str):
        raise CaptureUnauthorized("API key is missing or not a string.", code="missing_token")
    token = raw.strip()
    if not token:
        raise CaptureUnauthorized("API key is empty.", code="missing_token")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or "\x00" in token:
        raise CaptureUnauthorized("API key is not valid.", code="invalid_token")
    if token.startswith("phx_"):
        raise CaptureUnauthorized(
            "A personal API key (phx_) cannot capture events: use the project API key (phc_).",
            code="personal_api_key",
        )
    return token


class Ingestion:
    def __init__(self, clickhouse: ClickHouseExecutor, sessionmaker: async_sessionmaker[AsyncSession],
                 redis: object | None = None) -> None:
        self.sessionmaker = sessionmaker
        self.writer = IngestionWriter(clickhouse, sessionmaker, redis=redis)
        self._tokens: dict[str, tuple[int | None, float]] = {}
        # Set from the app's settings on first use (see app.routers.capture).
        self.limiter: CaptureLimiter | None = None

    async def admit(self, team_id: int, events: int) -> bool:
        """Capture rate limit: True to store, False to drop with a 200; raises for a 429."""
        if self.limiter is None or not self.limiter.enabled:
            return True
        return await self.limiter.admit(str(team_id), events)

    def start(self) -> None:
        self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()

    async def team_for_token(self, raw: object) -> int:
        token = normalize_token(raw)
        cached = self._tokens.get(token)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            team_id = cached[0]
        else:
            async with self.sessionmaker() as session:
                team_id = await session.scalar(select(Environment.id).where(Environment.api_token == token))
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[token] = (team_id, now + TOKEN_TTL_SECONDS)
        if team_id is None:
            raise CaptureUnauthorized("Project API key invalid. You can find your project API key in settings.",
                                      code="invalid_token")
        return team_id

from __future__ import annotations

from datetime import datetime, timezone

from app import clock
from app.settings import Settings


class TestClock:
    def test_frozen_by_env(self, monkeypatch):
        monkeypatch.setenv("APP_FROZEN_NOW", "2024-03-01T12:00:00Z")
        assert clock.now() == datetime(2024, 3, 1, 12, tzinfo=timezone.utc)

    def test_freeze_and_unfreeze(self):
        clock.freeze("2020-01-01T00:00:00+02:00")
        try:
            assert clock.now() == datetime(2019, 12, 31, 22, tzinfo=timezone.utc)
        finally:
            clock.freeze(None)
        assert clock.now().year >= 2026

    def test_settings_parse_frozen_now(self):
        s = Settings(frozen_now="2024-05-05T10:00:00")
        assert s.frozen_now == datetime(2024, 5, 5, 10, tzinfo=timezone.utc)

    async def test_frozen_clock_reaches_stored_timestamps(self, client, env):
        clock.freeze("2023-07-04T09:30:00Z")
        try:
            r = await client.post("/api/environments/", headers=env.headers, json={"name": "frozen"})
        finally:
            clock.freeze(None)
        assert r.json()["created_at"] == "2023-07-04T09:30:00Z"

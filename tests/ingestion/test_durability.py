"""A 200 means durably stored: events acknowledged before a `kill -9` of `serve` are all there
after a restart, and a SIGTERM flushes everything accepted before the process exits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.live_server import ROOT, free_port, wait_ready


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        env = {**os.environ, "APP_DATA_DIR": str(data_dir), "APP_DEMO_EVENTS": "0", "APP_RATE_LIMITS": "off",
               "APP_LOG_LEVEL": "WARNING", "APP_CLICKHOUSE_DATABASE": "tally"}
        for name in ("APP_DATABASE_URL", "APP_CLICKHOUSE_URL", "APP_REDIS_URL", "APP_FROZEN_NOW"):
            env.pop(name, None)
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(self.port)], cwd=ROOT,
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.url, self.proc, timeout=60, path="/_health")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self) -> str:
        return json.loads((self.data_dir / "credentials.json").read_text())["project_api_key"]

    def team(self) -> int:
        return json.loads((self.data_dir / "credentials.json").read_text())["environment_id"]


async def _hammer(url: str, token: str, acked: list[str], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            batch = [{"event": "durable", "distinct_id": f"d-{i}", "uuid": str(uuid.uuid4())} for i in range(50)]
            try:
                r = await client.post(f"{url}/batch/", json={"api_key": token, "batch": batch})
            except httpx.HTTPError:
                return  # the server went away mid-request: not acknowledged
            if r.status_code == 200:
                acked.extend(e["uuid"] for e in batch)


async def _load_then(server: Server, action, seconds: float) -> list[str]:
    acked: list[str] = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(_hammer(server.url, server.token(), acked, stop)) for _ in range(4)]
    await asyncio.sleep(seconds)
    action()  # while requests are in flight
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*clients)
    return acked


def _stored(data_dir: Path, team: int) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "tests.ingestion.query_data_dir", str(data_dir), str(team)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def _stop_leftover_postgres(data_dir: Path) -> None:
    """Safety net for a failed test: whatever PostgreSQL is still running on the data dir is stopped
    (the adopting serve stops it on SIGTERM, see app/embedded.py `_forget_dead_holders`)."""
    pidfile = data_dir / "postgres" / "postmaster.pid"
    try:
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)  # fast shutdown: ignore stale sessions
    except (OSError, ValueError, IndexError):
        pass


@pytest.fixture
def data_dir(tmp_path):
    yield tmp_path
    _stop_leftover_postgres(tmp_path)


async def test_kill_9_then_sigterm_loses_nothing_acknowledged(data_dir):
    tmp_path = data_dir
    first = Server(tmp_path)
    killed_acks = await _load_then(first, lambda: first.proc.send_signal(signal.SIGKILL), 1.5)
    first.proc.wait(timeout=30)
    assert len(killed_acks) > 0

    second = Server(tmp_path)  # adopts the embedded PostgreSQL/Redis the killed process left behind
    try:
        termed_acks = await _load_then(second, lambda: second.proc.send_signal(signal.SIGTERM), 1.0)
        assert second.proc.wait(timeout=60) == 0
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    assert len(termed_acks) > 0
    stored = _stored(tmp_path, first.team())
    assert set(killed_acks) <= set(stored)
    assert set(termed_acks) <= set(stored)
    assert len(stored) == len(set(stored))

"""Helpers for tests that run `python -m app serve` as a real process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The process environment for a server on its own data dir: no APP_* of the caller leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env.update({"APP_DATA_DIR": str(data_dir), "APP_LOG_JSON": "true", "APP_DEMO_EVENTS": "0", **extra})
    return env


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]


def wait_ready(base: str, proc: subprocess.Popen, *, output: Callable[[], str] = lambda: "",
               timeout: float = 90, path: str = "/_readyz") -> None:
    """Poll `path` until it answers 200; fail with the server's output if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {output()[-3000:]}")
        try:
            if httpx.get(f"{base}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"serve did not become ready in {timeout:.0f} s")

"""The embedded servers under a data dir: adopted after a crash, and still stopped afterwards
(ARCHITECTURE.md: "a start must adopt or replace a server left running on the same data dir")."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.live_server import ROOT


@pytest.fixture
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="tally-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _postgres_pids(data_dir: Path) -> set[int]:
    out = subprocess.run(["pgrep", "-f", f"postgres.*{data_dir}"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


class TestEmbeddedPostgres:
    def test_adopted_after_a_killed_holder_is_stopped(self, data_dir):
        data = data_dir
        # A holder killed by a signal (as `serve` under SIGKILL): its atexit clean-up never runs.
        crash = textwrap.dedent(f"""
            import os, signal
            from pathlib import Path
            from app.embedded import EmbeddedPostgres
            EmbeddedPostgres(Path({str(data)!r})).start()
            os.kill(os.getpid(), signal.SIGKILL)
        """)
        subprocess.run([sys.executable, "-c", crash], cwd=ROOT, timeout=60)
        left = _postgres_pids(data)
        assert left, "the killed holder's server should still run"

        from app.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(data)
        try:
            pg.start()
            assert _postgres_pids(data) == left  # adopted, not a second server
        finally:
            pg.stop()
        assert _gone(_postgres_pids, data), "the adopted server outlived its last live holder"


def _redis_pids(data_dir: Path) -> set[int]:
    out = subprocess.run(["pgrep", "-f", f"redis-server.*{data_dir}"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _in_subprocess(data: Path, body: str) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from app.embedded import EmbeddedRedis
        redis = EmbeddedRedis(Path({str(data)!r}))
    """) + textwrap.dedent(body)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60, check=False)


def _gone(pids_of, data: Path) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pids_of(data):
        time.sleep(0.05)
    survivors = pids_of(data)
    for pid in survivors:  # leave no server behind when the assertion fails
        subprocess.run(["kill", "-TERM", str(pid)], check=False)
    return not survivors


class TestEmbeddedRedis:
    def test_a_process_that_adopted_it_leaves_it_to_its_owner(self, data_dir):
        # `migrate`, or a second `serve` refused by chDB, used to stop the Redis of the running `serve`.
        from app.embedded import EmbeddedRedis

        data = data_dir
        owner = EmbeddedRedis(data)
        owner.start()
        try:
            _in_subprocess(data, "redis.start(); redis.stop()")
            assert owner._ping(), "the adopter stopped a server its owner still uses"
        finally:
            owner.stop()
        assert _gone(_redis_pids, data)

    def test_adopted_after_a_killed_owner_is_stopped(self, data_dir):
        from app.embedded import EmbeddedRedis

        data = data_dir
        _in_subprocess(data, "redis.start(); os.kill(os.getpid(), signal.SIGKILL)")
        left = _redis_pids(data)
        assert left
        heir = EmbeddedRedis(data)
        heir.start()
        assert _redis_pids(data) == left  # adopted, not replaced
        heir.stop()
        assert _gone(_redis_pids, data)

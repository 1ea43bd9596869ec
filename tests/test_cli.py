"""`python -m app` as a user runs it: serve as a subprocess on a free port, bootstrap while
serving, SIGTERM shutdown, and settings errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import ROOT, free_port, serve_command, serve_env, wait_ready


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _pids_of(pattern: str) -> set[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@pytest.fixture(scope="module")
def served():
    data_dir = Path(tempfile.mkdtemp(prefix="tally-cli-"))
    port = free_port()
    proc = subprocess.Popen(serve_command(port), cwd=ROOT, env=serve_env(data_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, output=proc.stderr.read)
    except AssertionError:
        proc.kill()
        raise
    yield proc, base, data_dir
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class TestServe:
    def test_first_start_writes_credentials(self, served):
        proc, base, data_dir = served
        path = data_dir / "credentials.json"
        creds = json.loads(path.read_text())
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert creds["personal_api_key"].startswith("phx_")
        r = httpx.get(f"{base}/api/environments/{creds['environment_id']}/",
                      headers={"Authorization": f"Bearer {creds['personal_api_key']}"})
        assert r.status_code == 200
        assert r.json()["api_token"] == creds["project_api_key"]

    def test_bootstrap_while_serving(self, served):
        proc, base, data_dir = served
        out = _run(["bootstrap", "--json"], serve_env(data_dir))
        assert out.returncode == 0, out.stderr
        created = json.loads(out.stdout.strip().splitlines()[-1])
        assert set(created) == {"organization_id", "environment_id", "project_api_key", "personal_api_key",
                                "user_email"}
        r = httpx.get(f"{base}/api/environments/{created['environment_id']}/",
                      headers={"Authorization": f"Bearer {created['personal_api_key']}"})
        assert r.status_code == 200
        # The server's embedded PostgreSQL survived the bootstrap process exiting.
        assert httpx.get(f"{base}/_readyz").status_code == 200

    def test_structured_logs_with_request_id(self, served):
        proc, base, data_dir = served
        httpx.get(f"{base}/_health", headers={"X-Request-ID": "log-probe-42"})
        # Logs are checked after shutdown in test_sigterm (stderr is read there).

    @pytest.mark.parametrize("command", [["serve", "--port", "0"], ["migrate"]])
    def test_second_owner_of_the_data_dir_is_refused(self, served, command):
        # chDB's data dir belongs to one process. A second `serve` or `migrate` used to fail with a
        # traceback after adopting, and then stopping, the running server's embedded Redis.
        proc, base, data_dir = served
        out = _run(command, serve_env(data_dir), timeout=60)
        assert out.returncode == 1, out.stderr
        assert "in use by another process" in out.stderr and "Traceback" not in out.stderr
        assert f"pid {proc.pid}" in out.stderr
        r = httpx.get(f"{base}/_readyz")
        assert r.status_code == 200, r.text

    def test_sigterm_stops_cleanly(self, served):
        proc, base, data_dir = served
        pg_before = _pids_of(f"postgres.*{data_dir}")
        assert pg_before, "embedded PostgreSQL should be running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        stderr = proc.stderr.read()
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert any(line.get("request_id") == "log-probe-42" for line in lines)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (_pids_of(f"postgres.*{data_dir}") or _pids_of(f"redis-server.*{data_dir}")):
            time.sleep(0.2)
        assert not _pids_of(f"postgres.*{data_dir}")
        assert not _pids_of(f"redis-server.*{data_dir}")


class TestCommands:
    @pytest.mark.parametrize("command", ["serve", "worker", "migrate", "bootstrap"])
    def test_help(self, command):
        out = _run([command, "--help"], serve_env(Path(tempfile.gettempdir())))
        assert out.returncode == 0 and "usage:" in out.stdout

    def test_invalid_settings_one_line(self, tmp_path):
        out = _run(["serve"], serve_env(tmp_path, APP_CLICKHOUSE_URL="ftp://nope", APP_LOG_LEVEL="LOUD"))
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr
        assert "APP_CLICKHOUSE_URL" in lines[0] and "APP_LOG_LEVEL" in lines[0]

    def test_production_requires_secret(self, tmp_path):
        out = _run(["migrate"], serve_env(tmp_path, APP_ENV="production"))
        assert out.returncode == 2 and "APP_SECRET_KEY" in out.stderr

    def test_read_only_data_dir_is_clear(self, tmp_path):
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        # root ignores mode bits, so use a path under a regular file instead, which no user can create.
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = _run(["serve", "--port", str(free_port())], serve_env(blocker / "data"))
        assert out.returncode == 1
        assert "data dir" in out.stderr and "Traceback" not in out.stderr

    def _serve_in_mount_namespace(self, data: Path, mount: str) -> subprocess.CompletedProcess:
        # A private mount namespace (root, as on the dev and CI machines): the mount is real for the
        # server and vanishes with it, leaving the host untouched.
        script = f"{mount} {data} && exec {sys.executable} -m app serve --port {free_port()}"
        return subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=ROOT, env=serve_env(data),
                              capture_output=True, text=True, timeout=60)

    def test_read_only_bind_data_dir_is_clear(self, tmp_path):
        # Mode bits do not stop root; a read-only bind mount does.
        out = self._serve_in_mount_namespace(tmp_path, "mount --bind -o ro {0}".format(tmp_path))
        assert out.returncode == 1, out.stderr
        assert "data dir" in out.stderr and "Read-only file system" in out.stderr and "Traceback" not in out.stderr

    def test_full_disk_data_dir_is_clear(self, tmp_path):
        # 512 KiB of tmpfs: the write probe fits, PostgreSQL's initdb would not.
        out = self._serve_in_mount_namespace(tmp_path, "mount -t tmpfs -o size=512k tmpfs")
        assert out.returncode == 1, out.stderr
        assert "data dir" in out.stderr and "MiB free" in out.stderr and "Traceback" not in out.stderr

    def test_worker_needs_clickhouse_url(self, tmp_path):
        out = _run(["worker"], serve_env(tmp_path))
        assert out.returncode == 1 and "APP_CLICKHOUSE_URL" in out.stderr

    def test_bootstrap_on_fresh_data_dir(self, tmp_path):
        data = Path(tempfile.mkdtemp(prefix="tally-boot-"))
        out = _run(["bootstrap", "--json"], serve_env(data))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1])["personal_api_key"].startswith("phx_")
        assert not _pids_of(f"postgres.*{data}")  # it stopped the server it started

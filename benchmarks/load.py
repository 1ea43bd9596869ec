"""Mixed load against a running `serve` on loopback (issue 9, item 5).

Each of C concurrent clients holds one keep-alive connection (a minimal raw HTTP/1.1 client, so the
load generator costs little CPU on the same machine) and loops for DURATION seconds, picking each
request at random:

- 70 % cached insight reads: `GET insights/{id}/` of a few saved insights whose cache is warm;
- 10 % list: `GET insights/`;
- 10 % ingestion: `POST /batch/` of 100 events;
- 10 % blocking trends: `POST query/` with `refresh=blocking` over the generated events, varied (date
  range, math, a property filter) so that most are cache misses and some hits.

Levels (default 50 then 200 clients) run one after the other on the same server. Recorded per level:
requests/s, p50/p99 per kind, errors (any non-2xx or broken connection), and the server process' RSS;
at the end, events acknowledged by `/batch/` against events stored (counted through HogQL). Bounded:
each level stops at its deadline, every request has a timeout, and the whole run has a hard limit.
Results are printed and (unless `--no-record`) appended to benchmarks/RESULTS.md.

    python -m benchmarks.load [--duration 60] [--events 1000000] [--levels 50,200] [--json] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

from benchmarks._machine import describe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
KINDS = ("cached_read", "list", "ingest", "query")
WEIGHTS = (70, 10, 10, 10)
BATCH = 100
INSIGHTS = 4
REQUEST_TIMEOUT = 60.0
LOAD_EVENT = "load_event"
DAYS = 30

# Events over the DAYS days before now: ~80 % $pageview, 10 % signup, 10 % click; 5 browsers.
GENERATE = """
INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, person_id)
SELECT generateUUIDv4(),
       multiIf(number % 10 = 0, 'signup', number % 10 = 1, 'click', '$pageview'),
       concat('{"$browser":"', ['Chrome', 'Safari', 'Firefox', 'Edge', 'Opera'][number % 5 + 1],
              '","price":', toString(number % 1000), '}'),
       now64(6, 'UTC') - toIntervalSecond(cityHash64(number) % ({days:UInt32} * 86400)),
       {team:Int64},
       concat('u', toString(cityHash64(number, 1) % 50000)),
       reinterpretAsUUID(MD5(concat('u', toString(cityHash64(number, 1) % 50000))))
FROM numbers({start:UInt64}, {n:UInt64})
"""

PV = {"kind": "EventsNode", "event": "$pageview"}
SAVED = [
    {"kind": "TrendsQuery", "series": [PV], "dateRange": {"date_from": "-7d"}},
    {"kind": "TrendsQuery", "series": [{**PV, "math": "dau"}], "dateRange": {"date_from": "-30d"}},
    {"kind": "TrendsQuery", "series": [PV], "dateRange": {"date_from": "-14d"}, "breakdownFilter": {"breakdown": "$browser"}},
    {"kind": "TrendsQuery", "series": [PV, {"kind": "EventsNode", "event": "signup"}], "dateRange": {"date_from": "-30d"},
     "trendsFilter": {"formula": "A/B"}},
]


SERVER_SETTINGS: dict[str, str] = {}  # --set NAME=VALUE: extra APP_* settings for the server


def _server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    # Rate limits and the per-environment query concurrency limit (429s by design) are off for the run.
    env.update({"APP_DATA_DIR": str(data_dir), "APP_DEMO_EVENTS": "0", "APP_RATE_LIMITS": "off",
                "APP_QUERY_CONCURRENCY_LIMIT": "1000",
                "APP_LOG_LEVEL": "WARNING", "APP_CLICKHOUSE_DATABASE": "tally", **SERVER_SETTINGS})
    return env


def _prepare(data_dir: str, events: int, queue) -> None:
    """In a child process (chDB's data dir belongs to one process): migrate, create the organization,
    environment and key, and generate the events; `serve` then adopts the data dir."""
    os.environ.update(_server_env(Path(data_dir)))

    async def run() -> dict:
        from app.backends import Backends
        from app.services.bootstrap import bootstrap
        from app.settings import Settings

        backends = await Backends.open(Settings())
        try:
            async with backends.sessionmaker() as session:
                creds = await bootstrap(session)
                await session.commit()
            done = 0
            while done < events:  # in slices, to bound the insert's memory
                n = min(2_000_000, events - done)
                await backends.clickhouse.command(GENERATE, {"start": done, "n": n, "team": creds.environment_id,
                                                             "days": DAYS})
                done += n
            return creds.as_dict()
        finally:
            await backends.close()

    queue.put(asyncio.run(run()))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects after a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write((head + "\r\n").encode() + body)
        try:
            await self.writer.drain()
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("connection closed")
            status = int(status_line.split()[1])
            length, chunked, close = 0, False, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            if chunked:
                parts = []
                while (size := int((await self.reader.readline()).split(b";")[0], 16)) > 0:
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readline()
                await self.reader.readline()
                data = b"".join(parts)
            else:
                data = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Level:
    clients: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    error_samples: list[str] = field(default_factory=list)
    acknowledged: int = 0
    query_hits: int = 0
    elapsed: float = 0.0
    rss_start: float = 0.0
    rss_peak: float = 0.0
    load_start: float = 0.0

    def summary(self) -> dict:
        total = sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())
        return {
            "clients": self.clients, "seconds": round(self.elapsed, 1), "requests": total,
            "requests_per_s": round(total / self.elapsed, 1) if self.elapsed else 0.0,
            "errors": sum(self.errors.values()), "errors_by_kind": self.errors, "error_samples": self.error_samples[:5],
            "kinds": {k: {"n": len(v), "p50_ms": round(pct(v, 50) * 1000, 1), "p99_ms": round(pct(v, 99) * 1000, 1)}
                      for k, v in self.latencies.items()},
            "acknowledged_events": self.acknowledged, "query_cache_hits": self.query_hits,
            "rss_start_mib": round(self.rss_start), "rss_peak_mib": round(self.rss_peak),
            "load_average_start": round(self.load_start, 2),
        }


class Workload:
    def __init__(self, port: int, creds: dict, insight_ids: list[int], seed: int,
                 weights: tuple[int, ...] = WEIGHTS) -> None:
        self.port = port
        self.weights = weights
        self.env = creds["environment_id"]
        self.token = creds["project_api_key"]
        self.auth = {"Authorization": f"Bearer {creds['personal_api_key']}"}
        self.json_auth = {**self.auth, "Content-Type": "application/json"}
        self.insight_ids = insight_ids
        self.rng = random.Random(seed)

    def batch_body(self) -> bytes:
        now = datetime.now(timezone.utc).isoformat()
        rng = self.rng
        batch = [{"event": LOAD_EVENT, "distinct_id": f"load-user-{rng.randrange(5000)}", "uuid": str(uuid.uuid4()),
                  "timestamp": now, "properties": {"$lib": "posthog-python", "plan": "pro", "n": i}}
                 for i in range(BATCH)]
        return orjson.dumps({"api_key": self.token, "batch": batch, "sent_at": now})

    def trends_body(self) -> bytes:
        rng = self.rng
        series = {**PV, "math": rng.choice(["total", "dau"])}
        query = {"kind": "TrendsQuery", "series": [series], "dateRange": {"date_from": f"-{rng.choice([7, 14, 30])}d"},
                 "properties": [{"type": "event", "key": "price", "operator": "gt", "value": rng.randrange(200)}]}
        if rng.random() < 0.3:
            query["breakdownFilter"] = {"breakdown": "$browser"}
        return orjson.dumps({"query": query, "refresh": "blocking"})

    async def client(self, level: Level, stop_at: float) -> None:
        conn = Connection(self.port)
        api = f"/api/environments/{self.env}"
        rng = self.rng
        try:
            while time.perf_counter() < stop_at:
                kind = rng.choices(KINDS, self.weights)[0]
                if kind == "cached_read":
                    args = ("GET", f"{api}/insights/{rng.choice(self.insight_ids)}/", self.auth)
                elif kind == "list":
                    args = ("GET", f"{api}/insights/", self.auth)
                elif kind == "ingest":
                    args = ("POST", "/batch/", {"Content-Type": "application/json"}, self.batch_body())
                else:
                    args = ("POST", f"{api}/query/", self.json_auth, self.trends_body())
                started = time.perf_counter()
                try:
                    status, data = await asyncio.wait_for(conn.request(*args), REQUEST_TIMEOUT)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                    conn.close()
                    level.errors[kind] += 1
                    level.error_samples.append(f"{kind}: {type(exc).__name__} {exc}"[:200])
                    await asyncio.sleep(0.05)  # no hot loop against a server that is gone
                    continue
                elapsed = time.perf_counter() - started
                if not 200 <= status < 300:
                    level.errors[kind] += 1
                    level.error_samples.append(f"{kind}: {status} {data[:160]!r}")
                    continue
                level.latencies[kind].append(elapsed)
                if kind == "ingest":
                    level.acknowledged += BATCH
                elif kind == "query" and b'"is_cached":true' in data:
                    level.query_hits += 1
        finally:
            conn.close()

    async def run_level(self, clients: int, duration: float, pid: int) -> Level:
        level = Level(clients=clients, load_start=os.getloadavg()[0], rss_start=_rss_mib(pid))
        level.rss_peak = level.rss_start
        started = time.perf_counter()
        stop_at = started + duration
        tasks = [asyncio.create_task(self.client(level, stop_at)) for _ in range(clients)]
        done = asyncio.gather(*tasks)
        while not done.done():
            await asyncio.wait([done], timeout=0.5)
            level.rss_peak = max(level.rss_peak, _rss_mib(pid))
        await done
        level.elapsed = time.perf_counter() - started
        return level


async def _http(port: int, method: str, path: str, headers: dict, body: dict | None = None) -> tuple[int, dict]:
    conn = Connection(port)
    try:
        data = orjson.dumps(body) if body is not None else b""
        status, raw = await asyncio.wait_for(conn.request(method, path, headers, data), REQUEST_TIMEOUT)
    finally:
        conn.close()
    return status, orjson.loads(raw) if raw else {}


async def _setup_insights(port: int, creds: dict) -> list[int]:
    """A few saved insights, their caches warmed by one blocking read each."""
    api = f"/api/environments/{creds['environment_id']}"
    headers = {"Authorization": f"Bearer {creds['personal_api_key']}", "Content-Type": "application/json"}
    ids = []
    for i, source in enumerate(SAVED[:INSIGHTS]):
        status, body = await _http(port, "POST", f"{api}/insights/", headers,
                                   {"name": f"load {i}", "query": {"kind": "InsightVizNode", "source": source}})
        assert status == 201, body
        ids.append(body["id"])
        status, body = await _http(port, "GET", f"{api}/insights/{body['id']}/?refresh=blocking", headers)
        assert status == 200 and body.get("result") is not None, body
    for insight_id in ids:
        status, body = await _http(port, "GET", f"{api}/insights/{insight_id}/", headers)
        assert status == 200 and body["is_cached"] is True, body
    return ids


async def _stored_events(port: int, creds: dict, expected: int, within: float = 30.0) -> int:
    """Events of the load stored (HogQL count), waiting up to `within` s for the last flush."""
    api = f"/api/environments/{creds['environment_id']}"
    headers = {"Authorization": f"Bearer {creds['personal_api_key']}", "Content-Type": "application/json"}
    query = {"kind": "HogQLQuery", "query": f"SELECT count() FROM events WHERE event = '{LOAD_EVENT}'"}
    deadline = time.monotonic() + within
    stored = -1
    while True:
        status, body = await _http(port, "POST", f"{api}/query/", headers, {"query": query, "refresh": "force_blocking"})
        if status == 200:
            stored = int(body["results"][0][0])
        if stored >= expected or time.monotonic() > deadline:
            return stored
        await asyncio.sleep(1.0)


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during startup")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def run(duration: float, events: int, levels: list[int], seed: int = 1, weights: tuple[int, ...] = WEIGHTS) -> dict:
    load_start = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="tally-bench-load-"))
    proc: subprocess.Popen | None = None
    try:
        started = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        child = ctx.Process(target=_prepare, args=(str(data_dir), events, queue))
        child.start()
        creds = queue.get(timeout=600)
        child.join(timeout=120)
        prepare_s = time.perf_counter() - started
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=_server_env(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_ready(port, proc)

        async def drive() -> dict:
            insight_ids = await _setup_insights(port, creds)
            workload = Workload(port, creds, insight_ids, seed, weights)
            results = []
            for clients in levels:
                level = await workload.run_level(clients, duration, proc.pid)
                results.append(level.summary())
            acknowledged = sum(r["acknowledged_events"] for r in results)
            stored = await _stored_events(port, creds, acknowledged)
            return {"levels": results, "acknowledged_events": acknowledged, "stored_events": stored,
                    "lost_events": max(0, acknowledged - stored)}

        # The client shares the cores with the server: uvloop (as the server uses) keeps its own
        # event-loop overhead out of the latencies it measures.
        import uvloop

        summary = uvloop.run(drive())
        summary.update({"events": events, "duration_s": duration, "prepare_s": round(prepare_s, 1),
                        "load_average_start": round(load_start, 2), "rss_end_mib": round(_rss_mib(proc.pid))})
        return summary
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def report(summary: dict) -> list[str]:
    lines = [
        f"### load — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC — {describe()}"
        f" — load average {summary['load_average_start']:.1f} at start (other processes share these cores)",
        "",
        f"Mixed workload against `serve` on loopback, {summary['duration_s']:.0f} s per level: 70 % cached"
        f" `GET insights/{{id}}/` ({INSIGHTS} warm insights), 10 % `GET insights/`, 10 % `POST /batch/` of {BATCH}"
        f" events, 10 % `POST query/` `refresh=blocking` trends (varied) over {summary['events']:,} events."
        " Rate limits and the query concurrency limit off. Each client holds one keep-alive connection"
        " and waits for each answer. Server RSS is the `serve` process (API and chDB; the embedded PostgreSQL"
        " and Redis processes are not counted).",
        "",
        "| clients | req/s | errors | cached read p50 / p99 | list p50 / p99 | batch p50 / p99 | trends p50 / p99"
        " (cache hits) | server RSS start → peak | load avg |",
        "|---:|---:|---:|---|---|---|---|---|---:|",
    ]
    for lv in summary["levels"]:
        k = lv["kinds"]

        def cell(name: str) -> str:
            return f"{k[name]['p50_ms']:.0f} / {k[name]['p99_ms']:.0f} ms"

        lines.append(
            f"| {lv['clients']} | {lv['requests_per_s']:,.0f} | {lv['errors']} | {cell('cached_read')} | {cell('list')}"
            f" | {cell('ingest')} | {cell('query')} ({lv['query_cache_hits']}/{k['query']['n']}) |"
            f" {lv['rss_start_mib']:,} → {lv['rss_peak_mib']:,} MiB | {lv['load_average_start']:.1f} |")
    lines += [
        "",
        f"- events acknowledged {summary['acknowledged_events']:,}, stored {summary['stored_events']:,}"
        f" → lost {summary['lost_events']:,}",
    ]
    if summary.get("mix", list(WEIGHTS)) != list(WEIGHTS):
        lines.append(f"- mix (cached reads, lists, batches, trends): {summary['mix']}")
    if summary.get("server_settings"):
        lines.append(f"- server settings: {summary['server_settings']}")
    for lv in summary["levels"]:
        if lv["errors"]:
            lines.append(f"- {lv['clients']} clients, errors by kind {lv['errors_by_kind']};"
                         f" e.g. {lv['error_samples'][:2]}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_LOAD_DURATION", "60")),
                        help="seconds per level (default 60)")
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_LOAD_EVENTS", "1000000")),
                        help="generated events the trends queries scan (default 1000000)")
    parser.add_argument("--levels", default=os.environ.get("BENCH_LOAD_LEVELS", "50,200"),
                        help="concurrent clients per level, comma-separated (default 50,200)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mix", default="70,10,10,10",
                        help="weights of cached reads, lists, batches, trends queries (default 70,10,10,10)")
    parser.add_argument("--set", action="append", default=[], metavar="APP_NAME=VALUE",
                        help="a server setting for the run (repeatable), e.g. APP_DB_POOL_SIZE=50")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv if argv is not None else ([] if __name__ != "__main__" else None))
    if not 0 < args.duration <= 600 or not 0 < args.events <= 50_000_000:
        parser.error("--duration must be in (0, 600] and --events in (0, 50000000]")
    levels = [int(n) for n in args.levels.split(",") if n.strip()]
    if not levels or any(not 0 < n <= 1000 for n in levels):
        parser.error("--levels: 1 to 1000 clients each")
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("APP_"):
            parser.error("--set takes APP_NAME=VALUE")
        SERVER_SETTINGS[name] = value
    weights = tuple(int(w) for w in args.mix.split(","))
    if len(weights) != len(KINDS) or min(weights) < 0 or not sum(weights):
        parser.error("--mix: four non-negative weights")
    summary = run(args.duration, args.events, levels, args.seed, weights)
    summary["mix"] = list(weights)
    summary["server_settings"] = dict(SERVER_SETTINGS)
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        lines = report(summary)
        print("\n".join(lines), flush=True)
        if not args.no_record:
            with RESULTS.open("a") as fh:
                fh.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Sustained `/batch/` ingestion against a running `serve`, next to a raw executor insert.

8 concurrent clients each POST 100-event posthog-python-style batches over keep-alive
connections (a minimal raw HTTP/1.1 client, so the load generator costs little CPU on the same
machine). After a warm-up, ROUNDS consecutive windows of DURATION seconds are measured on the same
server (throughput swings by ±15 % between windows here, see RESULTS.md; the median window is the
figure), with the server's CPU per event by thread from /proc. Then the server is stopped and, in
this process, the same kind of rows (built by the capture row builder) are inserted through the
executor: in 100-row batches from 8 concurrent tasks (the like-for-like comparison) and in one bulk
insert (the engine's ceiling). Results are printed and appended to benchmarks/RESULTS.md
(BENCH_NO_RECORD=1: print only).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson

from benchmarks._machine import describe

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
CLIENTS = 8
BATCH = 100
DURATION = float(os.environ.get("BENCH_DURATION", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARMUP = 3.0
USERS = 5_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Event uuids: a random prefix per run and a counter (uuid4() per event made the load generator,
# which shares the cores with the server, spend ~2 µs of CPU per event on urandom).
_UUID_PREFIX = uuid.uuid4().hex[:20]


def _uuid(seq: int, i: int) -> str:
    n = f"{_UUID_PREFIX}{seq * BATCH + i:012x}"
    return f"{n[:8]}-{n[8:12]}-{n[12:16]}-{n[16:20]}-{n[20:]}"


def _body(token: str, seq: int) -> bytes:
    now = datetime.now(timezone.utc).isoformat()
    batch = [
        {
            "event": "benchmark_event" if i % 5 else "$pageview",
            "distinct_id": f"bench-user-{(seq * BATCH + i) % USERS}",
            "uuid": _uuid(seq, i),
            "timestamp": now,
            "properties": {"$lib": "posthog-python", "$lib_version": "7.91.1", "$is_server": True,
                           "$geoip_disable": True, "plan": "pro", "amount": i, "path": f"/page/{i % 20}"},
        }
        for i in range(BATCH)
    ]
    return orjson.dumps({"api_key": token, "batch": batch, "sent_at": now, "historical_migration": False})


async def _client(port: int, token: str, rounds: list[tuple[float, float]], latencies: list[list[float]],
                  counter: list[int], offset: int) -> None:
    """Requests until the last round ends; each completed one counts in the round it started in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    seq = offset
    stop_at = rounds[-1][1]
    try:
        while time.perf_counter() < stop_at:
            body = _body(token, seq)
            seq += CLIENTS
            head = (f"POST /batch/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            started = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            elapsed = time.perf_counter() - started
            if b" 200 " not in status_line:
                raise RuntimeError(f"unexpected answer {status_line!r}")
            for index, (begin, end) in enumerate(rounds):
                if begin <= started < end:
                    latencies[index].append(elapsed)
            counter[0] += BATCH
    finally:
        writer.close()


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the server's threads, grouped: the event loop (the main thread), chDB's
    engine threads, its background merges, and the rest (our worker threads, others)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        group = ("event loop" if task.name == str(pid) else "merges" if name.startswith("MergeMutate")
                 else "engine" if name.startswith(("ThreadPool", "QueryPipeline", "QueryCompPipe")) else "other threads")
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def _children_cpu(pid: int) -> float:
    """CPU seconds of the embedded PostgreSQL and Redis processes `serve` started."""
    import psutil

    total = 0.0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited during startup")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


async def _load(port: int, token: str, pid: int) -> dict:
    start = time.perf_counter() + WARMUP
    rounds = [(start + i * DURATION, start + (i + 1) * DURATION) for i in range(ROUNDS)]
    latencies: list[list[float]] = [[] for _ in rounds]
    counter = [0]
    cpu: list[tuple[dict[str, float], float]] = []

    async def sample() -> None:
        for begin, _ in rounds + [(rounds[-1][1], 0.0)]:
            await asyncio.sleep(max(0.0, begin - time.perf_counter()))
            cpu.append((_thread_cpu(pid), _children_cpu(pid)))

    await asyncio.gather(sample(), *(_client(port, token, rounds, latencies, counter, i) for i in range(CLIENTS)))
    results = []
    for index, lat in enumerate(latencies):
        lat.sort()
        events = len(lat) * BATCH
        threads = {k: cpu[index + 1][0].get(k, 0.0) - cpu[index][0].get(k, 0.0) for k in cpu[index + 1][0]}
        threads["PostgreSQL + Redis"] = cpu[index + 1][1] - cpu[index][1]
        results.append({
            "events_per_s": events / DURATION,
            "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
            "requests": len(lat),
            "us_per_event": {k: v / events * 1e6 for k, v in threads.items()},
        })
    median = sorted(results, key=lambda r: r["events_per_s"])[len(results) // 2]
    return {"rounds": results, "median": median, "acknowledged": counter[0]}


async def _raw_insert(data_dir: Path, database: str, total: int) -> dict:
    from app.ingestion.events import normalize
    from app.ingestion.persons import EventPerson, person_uuid
    from app.ingestion.rows import EVENT_COLUMNS, event_row
    from app.query_engine.executor.chdb import ChdbExecutor

    executor = ChdbExecutor(str(data_dir / "clickhouse"), database, pool_size=3)
    team = 2_000_000_000
    now = datetime.now(timezone.utc)
    rows = []
    for seq in range(total // BATCH):
        for raw in orjson.loads(_body("x", seq))["batch"]:
            ev = normalize(raw, now=now, sent_at=now, client_ip="127.0.0.1")
            person = EventPerson(person_uuid(team, ev.distinct_id), "{}", now, "full")
            rows.append(event_row(team, ev, person, now, False))
    try:
        chunks = [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]
        queue = list(reversed(chunks))

        async def worker() -> None:
            while queue:
                await executor.insert("events", EVENT_COLUMNS, queue.pop())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        small = len(rows) / (time.perf_counter() - started)
        started = time.perf_counter()
        await executor.insert("events", EVENT_COLUMNS, rows)
        bulk = len(rows) / (time.perf_counter() - started)
        stored = await executor.execute("SELECT count() FROM events WHERE team_id != {t:Int64}", {"t": team})
    finally:
        await executor.close()
    return {"raw_100_rows_per_s": small, "raw_bulk_rows_per_s": bulk, "server_rows": int(stored.rows[0][0])}


def main() -> None:
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="tally-bench-ingestion-"))
    port = _free_port()
    env = {**os.environ, "APP_DATA_DIR": str(data_dir), "APP_DEMO_EVENTS": "0", "APP_RATE_LIMITS": "off",
           "APP_LOG_LEVEL": "WARNING", "APP_CLICKHOUSE_DATABASE": "tally"}
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(port, proc)
        token = json.loads((data_dir / "credentials.json").read_text())["project_api_key"]
        load = asyncio.run(_load(port, token, proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    try:
        raw = asyncio.run(_raw_insert(data_dir, "tally", min(load["acknowledged"], 300_000)))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    median = load["median"]
    ratio = median["events_per_s"] / raw["raw_100_rows_per_s"]
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in sorted(median["us_per_event"].items(), key=lambda kv: -kv[1]))
    lines = [
        f"### ingestion — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC — {describe()}"
        f" — load average {load_before:.1f} at start (other processes share these cores)",
        "",
        f"- `/batch/` end to end, {CLIENTS} clients × {BATCH}-event batches, median of {ROUNDS} windows of"
        f" {DURATION:.0f} s: **{median['events_per_s']:,.0f} events/s**, p50 {median['p50_ms']:.1f} ms,"
        f" p99 {median['p99_ms']:.1f} ms ({median['requests']:,} requests in that window)",
        "- every window: " + "; ".join(f"{r['events_per_s']:,.0f} events/s, p99 {r['p99_ms']:.0f} ms"
                                     for r in load["rounds"]),
        f"- server CPU per event in the median window, µs: {cpu}",
        f"- raw executor insert of the same rows, {BATCH}-row batches from {CLIENTS} tasks:"
        f" {raw['raw_100_rows_per_s']:,.0f} rows/s → end to end = {ratio:.0%} of it",
        f"- raw executor bulk insert (one insert): {raw['raw_bulk_rows_per_s']:,.0f} rows/s",
        f"- check: events acknowledged {load['acknowledged']:,}, rows stored {raw['server_rows']:,}",
        "",
    ]
    print("\n".join(lines))
    if os.environ.get("BENCH_NO_RECORD"):
        return
    with RESULTS.open("a") as fh:
        if fh.tell() == 0:
            fh.write("# Benchmark results\n\n")
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

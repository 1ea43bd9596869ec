"""Insights endpoints: (a) a cached GET insights/{id}/ next to a bare endpoint returning constant JSON
of the same size, (b) GET insights/?limit=100 over 100 insights (SQL statement count and latency),
(c) 50 concurrent identical refresh=force_blocking requests (one ClickHouse execution, total time
next to a single request). In-process app on a fresh data dir, driven through httpx's ASGI transport.
Appends a section to benchmarks/RESULTS.md (set BENCH_NO_RECORD=1 to only print the results)."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import orjson
from fastapi.responses import Response
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
N = int(os.environ.get("BENCH_INSIGHT_REQUESTS", "300"))
EVENTS = int(os.environ.get("BENCH_INSIGHT_EVENTS", "3000000"))
NOW = "2020-04-10T12:00:00Z"
QUERY = {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview", "math": "dau"}],
                                              "dateRange": {"date_from": "-30d"},
                                              "breakdownFilter": {"breakdown": "$browser"}}}
GENERATE = """
INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, person_id)
SELECT generateUUIDv4(), '$pageview',
       concat('{"$browser":"', ['Chrome', 'Safari', 'Firefox', 'Edge', 'Opera'][number % 5 + 1], '"}'),
       toDateTime64('2020-04-10 12:00:00', 6, 'UTC') - toIntervalSecond(cityHash64(number) % (60 * 86400)),
       {team:Int64}, concat('u', toString(number % 50000)),
       reinterpretAsUUID(MD5(concat('u', toString(number % 50000))))
FROM numbers({n:UInt64})
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def timed(client: httpx.AsyncClient, url: str, headers: dict, n: int) -> tuple[list[float], float]:
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(url, headers=headers)
        latencies.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text[:300]
    return latencies, n / (time.perf_counter() - started)


async def _run() -> list[str]:
    from app import clock
    from app.backends import Backends
    from app.main import create_app, tune_interpreter
    from app.services.bootstrap import bootstrap
    from app.services.query_runner import executions_key
    from app.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="tally-bench-insights-"))
    settings = Settings(env="test", data_dir=data_dir, rate_limits="off", log_json=False, log_level="WARNING")
    backends = await Backends.open(settings)
    app = create_app(settings, backends=backends)
    lines: list[str] = []
    clock.freeze(NOW)
    try:
        async with app.router.lifespan_context(app):
            async with backends.sessionmaker() as session:
                creds = await bootstrap(session)
                await session.commit()
            env = creds.environment_id
            headers = {"Authorization": f"Bearer {creds.personal_api_key}"}
            await backends.clickhouse.command(GENERATE, {"n": EVENTS, "team": env})
            # As a served app's lifespan does after startup (app/main.py; it leaves this to whoever
            # passes its own backends): what startup built is left out of later collections, whose
            # full passes would otherwise pause the event loop for 100+ ms in the middle of a round.
            tune_interpreter()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=300) as client:
                base = f"/api/environments/{env}/insights/"
                r = await client.post(base, json={"name": "bench", "query": QUERY}, headers=headers)
                insight = r.json()
                one = f"{base}{insight['id']}/"
                await client.get(one + "?refresh=blocking", headers=headers)
                cached = await client.get(one, headers=headers)
                assert cached.json()["is_cached"] is True
                payload = cached.content

                async def bare() -> Response:
                    return Response(payload, media_type="application/json")

                app.add_api_route("/bench/bare/", bare, methods=["GET"])
                await timed(client, one, headers, 20)
                retrieve_sql: list[str] = []

                def count_retrieve(conn, cursor, statement, *args):
                    retrieve_sql.append(statement)

                event.listen(backends.engine.sync_engine, "before_cursor_execute", count_retrieve)
                await client.get(one, headers=headers)
                event.remove(backends.engine.sync_engine, "before_cursor_execute", count_retrieve)
                load_before = os.getloadavg()[0]
                # Interleaved, so both sides see the same load from whatever else runs on the machine.
                ours, theirs = [], []
                for _ in range(N):
                    for target, hdrs, out in ((one, headers, ours), ("/bench/bare/", {}, theirs)):
                        t0 = time.perf_counter()
                        r = await client.get(target, headers=hdrs)
                        out.append(time.perf_counter() - t0)
                        assert r.status_code == 200, r.text[:300]
                ours_rps, bare_rps = len(ours) / sum(ours), len(theirs) / sum(theirs)
                lines.append(f"- (a) cached `GET insights/{{id}}/` ({len(payload):,} B body): p50 {statistics.median(ours) * 1000:.2f} ms, "
                             f"p99 {pct(ours, 99) * 1000:.2f} ms, {ours_rps:,.0f} req/s; bare constant-JSON endpoint: "
                             f"p50 {statistics.median(theirs) * 1000:.2f} ms, p99 {pct(theirs, 99) * 1000:.2f} ms, "
                             f"{bare_rps:,.0f} req/s → p50 ratio {statistics.median(ours) / statistics.median(theirs):.1f}×; "
                             f"{len(retrieve_sql)} SQL statements per cached retrieve; load average {load_before:.1f}")

                for i in range(99):
                    await client.post(base, json={"name": f"i{i}", "query": QUERY if i % 3 else None, "tags": ["t"]},
                                      headers=headers)
                statements: list[str] = []

                def count(conn, cursor, statement, *args):
                    statements.append(statement)

                event.listen(backends.engine.sync_engine, "before_cursor_execute", count)
                r = await client.get(base + "?limit=100", headers=headers)
                event.remove(backends.engine.sync_engine, "before_cursor_execute", count)
                assert len(r.json()["results"]) == 100
                listing, _ = await timed(client, base + "?limit=100", headers, 30)
                lines.append(f"- (b) `GET insights/?limit=100` over 100 insights: {len(statements)} SQL statements "
                             f"per request; p50 {statistics.median(listing) * 1000:.1f} ms, p99 {pct(listing, 99) * 1000:.1f} ms")

                url = one + "?refresh=force_blocking"
                # Three rounds, each a single request (median of 3) next to 50 concurrent ones: on a
                # shared machine one round can be off by a factor of two either way.
                rounds = []
                for _ in range(3):
                    singles = []
                    for _ in range(3):
                        t0 = time.perf_counter()
                        await client.get(url, headers=headers)
                        singles.append(time.perf_counter() - t0)
                    single = statistics.median(singles)
                    before = int(await backends.redis.get(executions_key(env)) or 0)
                    t0 = time.perf_counter()
                    bodies = await asyncio.gather(*[client.get(url, headers=headers) for _ in range(50)])
                    total = time.perf_counter() - t0
                    runs = int(await backends.redis.get(executions_key(env)) or 0) - before
                    same = len({b.content for b in bodies}) == 1 and all(b.status_code == 200 for b in bodies)
                    rounds.append((total / single, total, single, runs, same))
                load_c = os.getloadavg()[0]
                ratio, total, single, runs, same = sorted(rounds)[1]
                lines.append(f"- (c) 50 concurrent `refresh=force_blocking` ({EVENTS:,} events, DAU by $browser): "
                             f"{'/'.join(str(r[3]) for r in rounds)} ClickHouse execution(s) per round, identical "
                             f"bodies: {'yes' if all(r[4] for r in rounds) else '**no**'}; median round: total "
                             f"{total * 1000:.0f} ms vs single request {single * 1000:.0f} ms → {ratio:.2f}× (rounds: "
                             f"{', '.join(f'{r[0]:.2f}×' for r in rounds)}); load average {load_c:.1f}")
                for line in lines:
                    print(line, flush=True)
    finally:
        clock.freeze(None)
        await backends.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return lines


def main() -> None:
    lines = asyncio.run(_run())
    if os.environ.get("BENCH_NO_RECORD") == "1":
        return
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [f"### insights — {stamp} — {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, chDB in-process", ""]
    with RESULTS.open("a") as fh:
        fh.write("\n".join(header + lines) + "\n\n")


if __name__ == "__main__":
    main()

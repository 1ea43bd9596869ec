"""Trends queries end to end through `POST /query/`, each next to the fastest hand-written SQL that
returns the same numbers (its floor), at 1 M and 10 M synthetic events.

Everything runs in this process (chDB is in-process): an app built by `create_app` on a fresh data
dir, driven through httpx's ASGI transport, so each timing covers routing, auth, PostgreSQL
lookups, compiling, ClickHouse and result shaping. Events are generated inside ClickHouse with
`INSERT … SELECT … FROM numbers(N)`. Each scenario reports the median of RUNS runs (after one warm-up)
and checks that both sides return the same numbers. Results are appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000000,10000000").split(",")]
# BENCH_ONLY=<text>: only the scenarios whose name contains it. BENCH_NO_RECORD=1: print, don't append to RESULTS.md.
ONLY = os.environ.get("BENCH_ONLY", "")
NO_RECORD = os.environ.get("BENCH_NO_RECORD", "") not in ("", "0")
NOW = "2020-04-10T12:00:00Z"
PERSONS = 100_000
DAYS = 100

# ~80 % $pageview, 10 % signup, 10 % click over DAYS days before NOW; 5 browsers; price 0..999.
GENERATE = """
INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, person_id)
SELECT generateUUIDv4(),
       multiIf(number % 10 = 0, 'signup', number % 10 = 1, 'click', '$pageview'),
       concat('{"$browser":"', ['Chrome', 'Safari', 'Firefox', 'Edge', 'Opera'][number % 5 + 1],
              '","price":', toString(number % 1000), ',"$current_url":"https://x.com/p', toString(number % 200), '"}'),
       toDateTime64('2020-04-10 12:00:00', 6, 'UTC') - toIntervalSecond(cityHash64(number) % ({days:UInt32} * 86400)),
       {team:Int64},
       concat('u', toString(cityHash64(number, 1) % {persons:UInt32})),
       reinterpretAsUUID(MD5(concat('u', toString(cityHash64(number, 1) % {persons:UInt32}))))
FROM numbers({n:UInt64})
"""

PV = {"kind": "EventsNode", "event": "$pageview"}
D30 = {"date_from": "-30d"}
SCENARIOS: dict[str, dict] = {
    "daily total, 30 d": {"kind": "TrendsQuery", "series": [PV], "dateRange": D30},
    "DAU, 30 d": {"kind": "TrendsQuery", "series": [{**PV, "math": "dau"}], "dateRange": D30},
    "breakdown by $browser, 30 d": {"kind": "TrendsQuery", "series": [PV], "dateRange": D30,
                                    "breakdownFilter": {"breakdown": "$browser"}},
    "weekly_active, 90 d": {"kind": "TrendsQuery", "series": [{**PV, "math": "weekly_active"}],
                            "dateRange": {"date_from": "-90d"}},
    "p90 of price, 30 d": {"kind": "TrendsQuery", "series": [{**PV, "math": "p90", "math_property": "price"}],
                           "dateRange": D30},
    "formula A/B, 30 d": {"kind": "TrendsQuery", "series": [PV, {"kind": "EventsNode", "event": "signup"}],
                          "dateRange": D30, "trendsFilter": {"formula": "A/B"}},
    "compare, 30 d": {"kind": "TrendsQuery", "series": [PV], "dateRange": D30, "compareFilter": {"compare": True}},
}

# Floors: the shortest SQL we know for the same numbers. Bounds are the resolved UTC instants.
_WHERE = "team_id = {team:Int64} AND event = {event:String} AND timestamp >= {lo:DateTime64(6)} AND timestamp <= {hi:DateTime64(6)}"
FLOORS: dict[str, list[tuple[str, dict]]] = {
    "daily total, 30 d": [(f"SELECT toDate(timestamp) AS d, count() FROM events WHERE {_WHERE} GROUP BY d ORDER BY d", {})],
    "DAU, 30 d": [(f"SELECT toDate(timestamp) AS d, uniqExact(person_id) FROM events WHERE {_WHERE} GROUP BY d ORDER BY d", {})],
    "breakdown by $browser, 30 d": [(
        f"SELECT toDate(timestamp) AS d, JSONExtractString(properties, '$browser') AS b, count() FROM events "
        f"WHERE {_WHERE} GROUP BY d, b ORDER BY d, b", {})],
    "weekly_active, 90 d": [(
        "SELECT d, uniqExactMerge(s) OVER (ORDER BY d ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) FROM ("
        f"SELECT toDate(timestamp) AS d, uniqExactState(person_id) AS s FROM events WHERE {_WHERE} GROUP BY d) "
        "ORDER BY d", {"wau": True})],
    "p90 of price, 30 d": [(
        f"SELECT toDate(timestamp) AS d, quantile(0.9)(JSONExtractFloat(properties, 'price')) FROM events "
        f"WHERE {_WHERE} GROUP BY d ORDER BY d", {})],
    "formula A/B, 30 d": [
        (f"SELECT toDate(timestamp) AS d, count() FROM events WHERE {_WHERE} GROUP BY d ORDER BY d", {}),
        (f"SELECT toDate(timestamp) AS d, count() FROM events WHERE {_WHERE} GROUP BY d ORDER BY d",
         {"event": "signup"})],
    "compare, 30 d": [
        (f"SELECT toDate(timestamp) AS d, count() FROM events WHERE {_WHERE} GROUP BY d ORDER BY d", {}),
        (f"SELECT toDate(timestamp) AS d, count() FROM events WHERE {_WHERE} GROUP BY d ORDER BY d",
         {"previous": True})],
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _floor(ch, name: str, team: int) -> tuple[float, list]:
    """Run the floor queries of one scenario; returns (seconds, rows per query)."""
    out = []
    started = time.perf_counter()
    for sql, extra in FLOORS[name]:
        lo, hi = "2020-03-11 00:00:00", "2020-04-10 23:59:59"
        if extra.get("wau"):
            lo = "2020-01-04 00:00:00"  # 90 d range plus the 7-day window before it
        if extra.get("previous"):
            lo, hi = "2020-02-09 00:00:00", "2020-03-10 23:59:59"
        result = await ch.execute(sql, {"team": team, "event": extra.get("event", "$pageview"), "lo": lo, "hi": hi})
        out.append(result.rows)
    return time.perf_counter() - started, out


def _same_numbers(name: str, results: list[dict], floor_rows: list) -> bool:
    if name == "breakdown by $browser, 30 d":
        ours = {r["breakdown_value"]: sum(r["data"]) for r in results}
        theirs: dict[str, int] = {}
        for _, b, c in floor_rows[0]:
            theirs[b] = theirs.get(b, 0) + c
        return ours == theirs
    if name == "formula A/B, 30 d":
        a, b = ([r[1] for r in rows] for rows in floor_rows)
        return all(abs(x - (p / q if q else 0)) < 1e-9 for x, p, q in zip(results[0]["data"], a, b))
    if name == "p90 of price, 30 d":  # quantile() samples: equal up to its approximation
        return all(abs(v - r[1]) <= 0.02 * max(abs(r[1]), 1) for v, r in zip(results[0]["data"], floor_rows[0]))
    if name == "weekly_active, 90 d":
        theirs = [r[1] for r in floor_rows[0]][-len(results[0]["data"]):]
        return results[0]["data"] == theirs
    for row, rows in zip(results, floor_rows):
        if [round(float(v), 6) for v in row["data"]] != [round(float(r[1]), 6) for r in rows]:
            return False
    return True


def _settings(data_dir: Path):
    from app.settings import Settings

    return Settings(env="test", data_dir=data_dir, rate_limits="off", log_json=False, log_level="WARNING",
                    demo_events=0) if "demo_events" in Settings.model_fields else Settings(
        env="test", data_dir=data_dir, rate_limits="off", log_json=False, log_level="WARNING")


async def _generate(data_dir: Path) -> list[dict]:
    """Create one environment per size and fill it (in a child process, see `main`)."""
    from app.backends import Backends
    from app.services.bootstrap import bootstrap

    backends = await Backends.open(_settings(data_dir))
    teams = []
    try:
        for size in SIZES:
            async with backends.sessionmaker() as session:
                creds = await bootstrap(session)
                await session.commit()
            started = time.perf_counter()
            await backends.clickhouse.command(GENERATE, {"n": size, "team": creds.environment_id, "days": DAYS,
                                                         "persons": PERSONS})
            print(f"generated {size:,} events in {time.perf_counter() - started:.1f} s", flush=True)
            teams.append({"size": size, "team": creds.environment_id, "key": creds.personal_api_key})
    finally:
        await backends.close()
    return teams


def _generate_child(data_dir: str, out: str) -> None:
    Path(out).write_text(json.dumps(asyncio.run(_generate(Path(data_dir)))))


async def _run(data_dir: Path, teams: list[dict]) -> list[str]:
    from app import clock
    from app.backends import Backends
    from app.main import create_app

    settings = _settings(data_dir)
    backends = await Backends.open(settings)
    app = create_app(settings, backends=backends)
    lines: list[str] = []
    clock.freeze(NOW)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
                for entry in teams:
                    size, team = entry["size"], entry["team"]
                    headers = {"Authorization": f"Bearer {entry['key']}"}
                    for name, query in SCENARIOS.items():
                        if ONLY not in name:
                            continue
                        url = f"/api/environments/{team}/query/"
                        ours, floors, same = [], [], True
                        for i in range(RUNS + 1):
                            t0 = time.perf_counter()
                            r = await client.post(url, json={"query": query, "refresh": "force_blocking"}, headers=headers)
                            elapsed = time.perf_counter() - t0
                            if r.status_code != 200:
                                raise RuntimeError(f"{name}: {r.status_code} {r.text[:500]}")
                            floor_s, floor_rows = await _floor(backends.clickhouse, name, team)
                            if i:  # the first run warms caches on both sides
                                ours.append(elapsed)
                                floors.append(floor_s)
                            same = same and _same_numbers(name, r.json()["results"], floor_rows)
                        o, f = statistics.median(ours), statistics.median(floors)
                        line = (f"| {size / 1e6:g} M | {name} | {o * 1000:.0f} ms | {f * 1000:.0f} ms | "
                                f"{o / f:.2f}× | {'yes' if same else '**no**'} |")
                        print(line, flush=True)
                        lines.append(line)
    finally:
        clock.freeze(None)
        await backends.close()
    return lines


def main() -> None:
    # Data is generated in a child process, so the peak RSS measured here is the serving process's
    # (app + chDB + the benchmark client), not the bulk INSERT's.
    data_dir = Path(tempfile.mkdtemp(prefix="tally-bench-trends-"))
    try:
        out = data_dir / "teams.json"
        child = multiprocessing.get_context("spawn").Process(target=_generate_child, args=(str(data_dir), str(out)))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise RuntimeError("data generation failed")
        lines = asyncio.run(_run(data_dir, json.loads(out.read_text())))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    rss = _rss_mib()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        f"### trends — {stamp} — {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, chDB in-process",
        "",
        f"End to end through `POST /query/` (median of {RUNS} after a warm-up) next to the hand-written floor. "
        f"{PERSONS:,} persons, {DAYS} days of events. Peak RSS of the serving process (app + chDB + client; "
        f"data generated in a child process): {rss:,.0f} MiB. The machine was shared with other work, so "
        "absolute times are noisy; both sides of a row ran interleaved.",
        "",
        "| events | scenario | POST /query/ | floor SQL | ratio | same numbers |",
        "|---|---|---:|---:|---:|---|",
    ]
    text = "\n".join(header + lines) + "\n\n"
    print(text)
    if NO_RECORD:
        return
    with RESULTS.open("a") as fh:
        fh.write("\n" + text)


if __name__ == "__main__":
    main()

"""Elements stats and values over 1 M autocapture events, next to the bare ClickHouse queries.

A fresh embedded data dir gets 1 M interaction events for one environment (INSERT … SELECT from
numbers(): 5,000 distinct chains with a skewed distribution, 90 % $autocapture, 6 % $rageclick,
4 % $dead_click, spread over the last 10 days, plus 20 % non-interaction events with empty chains).
Then, in one run, each scenario is timed REPEAT times (alternating with its bare query; medians reported):

- stats: `GET /elements/stats/` with default parameters (last 7 days, limit 50,000), through the
  full ASGI app (auth, validation, ClickHouse, parsing every chain of the page, JSON);
- stats bare: the GROUP BY chain, event … LIMIT that produces the same page, straight on the executor;
- values: `GET /elements/values/?key=text` and its bare GROUP BY.

Results are printed and appended to benchmarks/RESULTS.md. Run: `python -m benchmarks.elements`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson

from benchmarks._machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
EVENTS = int(os.environ.get("BENCH_ELEMENT_EVENTS", "1000000"))
CHAINS = 5_000
REPEAT = 7

# Server-side parameters only; the one literal is the engine-chosen row count.
_GENERATE = """
INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, elements_chain, created_at,
                    person_id, person_properties)
SELECT generateUUIDv4(number), ev, concat('{"$current_url": "https://shop.example.com/p/', toString(cid % 40), '"}'),
       ts, {team:Int64}, concat('user-', toString(number % 20000)), chain, ts, generateUUIDv4(number % 20000), '{}'
FROM (
    SELECT number,
           toUInt32(floor(pow(randCanonical(), 3) * {chains:UInt32})) AS cid,
           {now:DateTime64(6, 'UTC')} - toIntervalSecond(rand(number) % (10 * 86400)) AS ts,
           multiIf(number % 5 = 0, '$pageview', number % 50 = 1, '$rageclick', number % 50 = 2, '$dead_click',
                   '$autocapture') AS ev,
           if(ev = '$pageview', '', concat(
               'button.btn.btn-', toString(cid % 7), '.md:hover:bg-blue-', toString(cid % 9),
               ':attr__class="btn btn-', toString(cid % 7), ' md:hover:bg-blue-', toString(cid % 9),
               '"attr__data-attr="cta-', toString(cid), '"attr__type="button"nth-child="', toString(cid % 5 + 1),
               '"nth-of-type="1"text="Click \\\\"', toString(cid), '\\\\" now"',
               ';div.container.mx-auto.md:flex:attr__class="container mx-auto md:flex"nth-child="2"nth-of-type="1"',
               ';section#s', toString(cid % 13), ':attr__id="s', toString(cid % 13), '"attr_id="s', toString(cid % 13),
               '"nth-child="', toString(cid % 4 + 1), '"nth-of-type="1"',
               ';main:nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"')) AS chain
    FROM numbers({events:UInt64})
)
"""

_BARE_STATS = """
SELECT elements_chain, event, count() AS c, cityHash64(elements_chain) AS h
FROM events
WHERE team_id = {team:Int64} AND event IN {types:Array(String)} AND elements_chain != ''
  AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp <= {end:DateTime64(6, 'UTC')}
GROUP BY elements_chain, event
ORDER BY c DESC, h ASC, event ASC
LIMIT 50001 OFFSET 0
"""

_BARE_VALUES = """
SELECT extract(chain, {re:String}) AS value, count() AS c
FROM (SELECT elements_chain AS chain FROM events WHERE team_id = {team:Int64} AND event = '$autocapture'
      AND elements_chain != '' AND match(elements_chain, {re:String}) LIMIT 100000)
GROUP BY value ORDER BY c DESC, value ASC LIMIT 100
"""


async def _side_by_side(api, bare, repeat: int = REPEAT) -> tuple[float, object, float, object]:
    """Median times of `api` and `bare`, run alternately so that load from anything else running
    on the machine hits both alike."""
    api_times, bare_times, api_last, bare_last = [], [], None, None
    for _ in range(repeat):
        started = time.perf_counter()
        api_last = await api()
        api_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        bare_last = await bare()
        bare_times.append(time.perf_counter() - started)
    return statistics.median(api_times), api_last, statistics.median(bare_times), bare_last


async def _run(data_dir: Path) -> dict:
    from app.backends import Backends
    from app.main import create_app
    from app.services.bootstrap import bootstrap
    from app.settings import Settings

    settings = Settings(env="test", data_dir=data_dir, rate_limits="off", log_json=False,
                        clickhouse_database="tally_bench_elements")
    backends = await Backends.open(settings)
    try:
        async with backends.sessionmaker() as session:
            creds = await bootstrap(session)
            await session.commit()
        team = creds.environment_id
        now = datetime.now(timezone.utc)
        ch = backends.clickhouse
        started = time.perf_counter()
        await ch.command(_GENERATE, {"team": team, "chains": CHAINS, "now": now, "events": EVENTS})
        generate_s = time.perf_counter() - started
        count = (await ch.execute("SELECT count(), countIf(elements_chain != '') FROM events WHERE team_id = {t:Int64}",
                                  {"t": team})).rows[0]

        app = create_app(settings, backends=backends)
        headers = {"Authorization": f"Bearer {creds.personal_api_key}"}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
                base = f"/api/environments/{team}/elements"

                # Timed up to the response bytes; decoding the JSON is the client's cost, not the API's.
                async def stats():
                    r = await client.get(f"{base}/stats/", headers=headers)
                    r.raise_for_status()
                    return r

                async def values():
                    r = await client.get(f"{base}/values/", params={"key": "text"}, headers=headers)
                    r.raise_for_status()
                    return r

                local_now = now  # UTC environment: day bounds as the endpoint computes them
                start = datetime.combine((local_now - timedelta(days=7)).date(), datetime.min.time(), timezone.utc)
                end = datetime.combine(local_now.date(), datetime.max.time(), timezone.utc)

                async def bare_stats():
                    return (await ch.execute(_BARE_STATS, {"team": team, "start": start, "end": end,
                                                           "types": ["$autocapture", "$rageclick", "$dead_click"]})).rows

                async def bare_values():
                    return (await ch.execute(_BARE_VALUES, {"team": team, "re": '[:|"]text="(.*?[^\\\\])"'})).rows

                cold_started = time.perf_counter()
                await stats()  # the first request after start: every chain of the page is parsed
                stats_cold_s = time.perf_counter() - cold_started
                await bare_stats(), await values(), await bare_values()  # warm the engine's caches
                stats_s, stats_response, bare_stats_s, bare_rows = await _side_by_side(stats, bare_stats)
                values_s, values_response, bare_values_s, bare_values_rows = await _side_by_side(values, bare_values)
                stats_body, values_body = orjson.loads(stats_response.content), values_response.json()
                stats_bytes = len(stats_response.content)
        assert [r["count"] for r in stats_body["results"]] == [int(r[2]) for r in bare_rows[:50_000]]
        # The 100,000-row scan reads "any" rows, so only the size of the answer is comparable.
        assert len(values_body) == len(bare_values_rows)
        return {
            "events": int(count[0]), "with_chain": int(count[1]), "generate_s": generate_s,
            "stats_s": stats_s, "stats_cold_s": stats_cold_s, "stats_mb": stats_bytes / 1e6, "bare_stats_s": bare_stats_s, "stats_rows": len(stats_body["results"]),
            "values_s": values_s, "bare_values_s": bare_values_s, "values_rows": len(values_body),
        }
    finally:
        await backends.close()


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="tally-bench-elements-"))
    try:
        r = asyncio.run(_run(data_dir))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### elements — {stamp} — {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()}",
        "",
        f"- data: {r['events']:,} events ({r['with_chain']:,} with a chain, {CHAINS:,} distinct chains, 10 days), "
        f"generated with INSERT … SELECT in {r['generate_s']:.2f} s",
        f"- `GET /elements/stats/` (defaults: last 7 days, limit 50,000; {r['stats_rows']:,} rows on the page, "
        f"{r['stats_mb']:.1f} MB of JSON): **{r['stats_s'] * 1000:.0f} ms** median of {REPEAT} "
        f"(first request, every chain parsed: {r['stats_cold_s'] * 1000:.0f} ms); bare ClickHouse GROUP BY for "
        f"the same page {r['bare_stats_s'] * 1000:.0f} ms → {r['stats_s'] / r['bare_stats_s']:.2f}×",
        f"- `GET /elements/values/?key=text` ({r['values_rows']} values): **{r['values_s'] * 1000:.0f} ms**; "
        f"bare query {r['bare_values_s'] * 1000:.0f} ms → {r['values_s'] / r['bare_values_s']:.2f}×",
        "",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    with RESULTS.open("a") as fh:
        fh.write("\n" + text)


if __name__ == "__main__":
    main()

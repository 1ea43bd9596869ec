"""Demo data: deterministic from the seed, written through the capture row builder."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from app.demo import generate_demo_data
from app.demo.generator import DemoProduct
from tests.ingestion.helpers import count, unique_persons

END = datetime(2026, 11, 26, tzinfo=timezone.utc)


def test_same_seed_same_events():
    first = [(e.uuid, e.event, e.distinct_id, e.timestamp) for e in DemoProduct(seed=3, days=14, end=END).events(2000)]
    second = [(e.uuid, e.event, e.distinct_id, e.timestamp) for e in DemoProduct(seed=3, days=14, end=END).events(2000)]
    other = [(e.uuid, e.event) for e in DemoProduct(seed=4, days=14, end=END).events(2000)]
    assert first == second and [f[:2] for f in first] != other
    assert all(ts < END for *_, ts in first)


async def test_generate_for_environment(env, backends):
    ch = backends.clickhouse
    written = await generate_demo_data(ch, backends.sessionmaker, environment_id=env.id, events=5000, days=14,
                                       seed=11, progress=False)
    assert written == 5000 and await count(ch, env.id) == 5000
    result = await ch.execute(
        "SELECT event, count(), countIf(elements_chain != ''), countIf(`$session_id` != '') FROM events"
        " WHERE team_id = {t:Int64} GROUP BY event", {"t": env.id})
    stats = {r[0]: r[1:] for r in result.rows}
    for name in ("$pageview", "$autocapture", "$identify", "signed_up", "purchase"):
        assert stats[name][0] > 0, name
    assert stats["$autocapture"][1] == stats["$autocapture"][0]  # every click has a chain
    assert stats["$pageview"][2] == stats["$pageview"][0]  # every pageview is in a session
    assert "$rageclick" in stats or "$dead_click" in stats
    revenue = await ch.execute(
        "SELECT sum(JSONExtractFloat(properties, 'revenue')) FROM events WHERE team_id = {t:Int64}"
        " AND event = 'purchase'", {"t": env.id})
    assert revenue.rows[0][0] > 0
    # signups merged their anonymous visitors: fewer persons than distinct ids
    ids = await ch.execute("SELECT uniqExact(distinct_id) FROM events WHERE team_id = {t:Int64}", {"t": env.id})
    assert 0 < await unique_persons(ch, env.id) < ids.rows[0][0]
    person = await ch.execute(
        "SELECT properties FROM person WHERE team_id = {t:Int64} AND is_identified = 1 LIMIT 1", {"t": env.id})
    assert json.loads(person.rows[0][0])["email"].endswith("@example.com")

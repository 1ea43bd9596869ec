"""Second audit of INGESTION.md §5, §9 and §11: each test asserts one spec rule end to end."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.ingestion.persons import person_uuid
from app.models import Person
from tests.ingestion.helpers import event, events, person_of, unique_persons


async def send(client, env, *evs, **envelope):
    r = await client.post("/batch/", json={"api_key": env.creds.project_api_key, "batch": list(evs), **envelope})
    assert r.status_code == 200, r.text


async def pg_persons(backends, env_id):
    async with backends.sessionmaker() as session:
        rows = (await session.scalars(select(Person).where(Person.environment_id == env_id))).all()
        return {str(p.id): p for p in rows}


class TestMergeEdgeCases:
    async def test_merge_version_is_max_plus_one_even_with_event_set(self, client, env, backends):
        """§9.4.6: version = max of both + 1 (the event's own $set is part of the merge)."""
        await send(client, env, event("a", "v-anon", **{"$set": {"a": 1}}), event("b", "v-user", **{"$set": {"b": 1}}))
        await send(client, env, event("b2", "v-user", **{"$set": {"b": 2}}))
        before = await pg_persons(backends, env.id)
        versions = {k: p.version for k, p in before.items()}
        await send(client, env, event("$identify", "v-user", properties={"$anon_distinct_id": "v-anon"},
                                      **{"$set": {"email": "x@y"}}))
        after = await pg_persons(backends, env.id)
        target = str(person_uuid(env.id, "v-user"))
        assert list(after) == [target]
        assert after[target].properties == {"a": 1, "b": 2, "email": "x@y"}
        assert after[target].version == max(versions.values()) + 1

    async def test_set_once_precedence_on_merge(self, client, env, backends):
        """§9.4.6: other's properties overlaid by target's, then the event's $set_once (only where absent)."""
        await send(client, env, event("a", "so-anon", **{"$set_once": {"first": "anon", "only_anon": 1}}))
        await send(client, env, event("b", "so-user", **{"$set_once": {"first": "user"}}))
        await send(client, env, event("$identify", "so-user", properties={"$anon_distinct_id": "so-anon"},
                                      **{"$set_once": {"first": "event", "new": "n"}}))
        persons = await pg_persons(backends, env.id)
        assert list(persons.values())[0].properties == {"first": "user", "only_anon": 1, "new": "n"}

    async def test_created_at_is_earlier_of_both(self, client, env, backends):
        await send(client, env, event("a", "c-user", timestamp="2026-01-02T00:00:00Z"))
        await send(client, env, event("b", "c-anon", timestamp="2026-01-01T00:00:00Z"))
        await send(client, env, event("$identify", "c-user", properties={"$anon_distinct_id": "c-anon"},
                                      timestamp="2026-01-03T00:00:00Z"))
        persons = await pg_persons(backends, env.id)
        assert [p.created_at.isoformat() for p in persons.values()] == ["2026-01-01T00:00:00+00:00"]

    async def test_alias_chain_and_merge_into_merged_person(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("x", "ch-1", **{"$set": {"one": 1}}), event("x", "ch-2", **{"$set": {"two": 2}}),
                   event("x", "ch-3", **{"$set": {"three": 3}}))
        # ch-2 absorbs ch-1, then ch-3 absorbs ch-2 (whose person already owns ch-1)
        await send(client, env, event("$create_alias", "ch-2", properties={"alias": "ch-1"}))
        await send(client, env, event("$create_alias", "ch-3", properties={"alias": "ch-1"}))
        ids = {await person_of(ch, env.id, d) for d in ("ch-1", "ch-2", "ch-3")}
        # ch-2's person is identified after the first alias: the second alias must be refused
        assert len(ids) == 2
        await send(client, env, event("$merge_dangerously", "ch-3", properties={"alias": "ch-1"}))
        ids = {await person_of(ch, env.id, d) for d in ("ch-1", "ch-2", "ch-3")}
        assert ids == {str(person_uuid(env.id, "ch-3"))}
        persons = await pg_persons(backends, env.id)
        assert [p.properties for p in persons.values()] == [{"one": 1, "two": 2, "three": 3}]
        assert await unique_persons(ch, env.id) == 1

    async def test_refused_merge_still_applies_event_properties_to_target(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("$identify", "r-a", properties={"$anon_distinct_id": "r-anon-a"}),
                   event("$identify", "r-b", properties={"$anon_distinct_id": "r-anon-b"}))
        await send(client, env, event("$identify", "r-b", properties={"$anon_distinct_id": "r-a"},
                                      **{"$set": {"k": "v"}}))
        persons = await pg_persons(backends, env.id)
        assert persons[str(person_uuid(env.id, "r-b"))].properties == {"k": "v"}
        assert persons[str(person_uuid(env.id, "r-a"))].properties == {}
        rows = await events(ch, env.id, columns="event, toString(person_id), person_properties")
        assert rows[-1][1] == str(person_uuid(env.id, "r-b")) and json.loads(rows[-1][2]) == {"k": "v"}

    async def test_same_batch_events_reference_each_other(self, client, env, backends):
        ch = backends.clickhouse
        off = {"$process_person_profile": False}
        await send(client, env,
                   event("pv", "sb-anon", properties=dict(off)),
                   event("$identify", "sb-user", properties={"$anon_distinct_id": "sb-anon"}, **{"$set": {"n": 1}}),
                   event("after-anon", "sb-anon", **{"$set": {"m": 2}}),
                   event("personless-after", "sb-anon", properties=dict(off)))
        rows = await events(ch, env.id, columns="event, toString(person_id), person_properties, person_mode")
        pid = str(person_uuid(env.id, "sb-anon"))  # the id used personless owns the person (§9.4.3)
        assert {r[1] for r in rows} == {pid}
        by_event = {r[0]: r for r in rows}
        assert json.loads(by_event["$identify"][2]) == {"n": 1}
        assert json.loads(by_event["after-anon"][2]) == {"n": 1, "m": 2}
        assert by_event["personless-after"][2:] == ("{}", "propertyless")
        assert await unique_persons(ch, env.id) == 1

    async def test_identify_known_target_unknown_anon_used_personless(self, client, env, backends):
        """§9.4.4: the unknown id was used personless → version 1 row (an override)."""
        ch = backends.clickhouse
        await send(client, env, event("x", "k-user"), event("pv", "k-anon", properties={"$process_person_profile": False}))
        await send(client, env, event("$identify", "k-user", properties={"$anon_distinct_id": "k-anon"}))
        result = await ch.execute(
            "SELECT distinct_id, toString(argMax(person_id, version)) FROM person_distinct_id_overrides"
            " WHERE team_id = {t:Int64} GROUP BY distinct_id", {"t": env.id})
        assert dict(result.rows) == {"k-anon": str(person_uuid(env.id, "k-user"))}
        persons = await pg_persons(backends, env.id)
        assert [p.is_identified for p in persons.values()] == [True]


class TestEventRowPersonColumns:
    async def test_row_shows_own_set_even_when_unset_removes_it(self, client, env, backends):
        """§9.7: person_properties = person after the event, overlaid with the event's own $set."""
        ch = backends.clickhouse
        await send(client, env, event("a", "ov", **{"$set": {"k": 1, "z": 0}}))
        await send(client, env, event("b", "ov", properties={"$unset": ["k", "z"]}, **{"$set": {"k": 2}}))
        rows = await events(ch, env.id, columns="event, person_properties")
        assert json.loads(rows[-1][1]) == {"k": 2}
        persons = await pg_persons(backends, env.id)
        assert list(persons.values())[0].properties == {}  # $unset applied last


class TestTimestamps:
    async def test_far_future_skew_corrected_timestamp_is_clamped_to_now(self, client, env, backends):
        """§5: step 4 (clamp > 23 h to `now`) comes before step 5 (years outside 0–9999 → epoch)."""
        ch = backends.clickhouse
        await send(client, env, event("far", "ts-1", timestamp="9999-12-31T00:00:00Z"),
                   sent_at="2020-01-01T00:00:00Z")
        await send(client, env, event("neg-offset", "ts-1", offset=-10**15))
        rows = await events(ch, env.id, columns="event, toYear(timestamp)")
        assert all(r[1] > 2020 for r in rows), rows  # stored at `now`, not at the 1970 epoch

    async def test_unparseable_envelope_sent_at_falls_back_to_query_ms(self, client, env, backends):
        """§5: sent_at = envelope `sent_at`, else query `_` (an unparseable `sent_at` counts as absent)."""
        import time
        from datetime import datetime, timezone
        ch = backends.clickhouse
        client_now_ms = int(time.time() * 1000) - 3_600_000  # the client's clock is an hour slow
        ts = datetime.fromtimestamp(client_now_ms / 1000, tz=timezone.utc).isoformat()
        body = {"api_key": env.creds.project_api_key, "sent_at": "not a date",
                "batch": [event("skewed", "ts-2", timestamp=ts)]}
        r = await client.post(f"/batch/?_={client_now_ms}", json=body)
        assert r.status_code == 200, r.text
        rows = await events(ch, env.id, columns="event, toUnixTimestamp(timestamp)")
        # skew-corrected against `_`: stored at about the server's now, not an hour earlier
        assert abs(rows[0][1] - time.time()) < 600, rows


class TestElementsChain:
    async def test_empty_chain_string_falls_back_to_elements(self, client, env, backends):
        """§11.1: an empty `$elements_chain` is no chain; build it from `$elements`."""
        ch = backends.clickhouse
        await send(client, env, event("$autocapture", "el-1", properties={
            "$elements_chain": "", "$elements": [{"tag_name": "img"}]}))
        rows = await events(ch, env.id, columns="elements_chain, properties")
        assert rows[0][0] == 'img:nth-child="0"nth-of-type="0"'
        props = json.loads(rows[0][1])
        assert "$elements" not in props and "$elements_chain" not in props

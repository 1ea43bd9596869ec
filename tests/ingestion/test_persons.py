"""Person processing (§9) through `/batch/`, asserted on ClickHouse and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.ingestion import metrics
from app.ingestion.persons import person_uuid
from app.models import Person, PersonDistinctId
from tests.ingestion.helpers import event, events, person_of, unique_persons


async def send(client, env, *evs):
    r = await client.post("/batch/", json={"api_key": env.creds.project_api_key, "batch": list(evs)})
    assert r.status_code == 200, r.text


async def person_rows(ch, team_id):
    result = await ch.execute(
        "SELECT toString(id), argMax(properties, version), argMax(is_identified, version), argMax(is_deleted, version)"
        " FROM person WHERE team_id = {t:Int64} GROUP BY id", {"t": team_id})
    return {r[0]: (json.loads(r[1]), r[2], r[3]) for r in result.rows}


async def overrides(ch, team_id):
    result = await ch.execute(
        "SELECT distinct_id, toString(argMax(person_id, version)) FROM person_distinct_id_overrides"
        " WHERE team_id = {t:Int64} GROUP BY distinct_id", {"t": team_id})
    return dict(result.rows)


class TestIdentify:
    async def test_personless_then_identify(self, client, env, backends):
        ch = backends.clickhouse
        anon = {"$process_person_profile": False}
        await send(client, env, event("$pageview", "anon-1", properties=anon), event("$pageview", "anon-1", properties=anon))
        await send(client, env, event("$identify", "user@x", properties={"$anon_distinct_id": "anon-1"},
                                      **{"$set": {"email": "user@x"}}))
        await send(client, env, event("after", "user@x"))
        assert await person_of(ch, env.id, "anon-1") == await person_of(ch, env.id, "user@x") is not None
        # the anonymous id was used personless, so its UUIDv5 became the person: no override needed
        assert await person_of(ch, env.id, "anon-1") == str(person_uuid(env.id, "anon-1"))
        assert await unique_persons(ch, env.id) == 1
        rows = await events(ch, env.id, columns="event, person_mode, person_properties")
        assert [r[1] for r in rows] == ["propertyless", "propertyless", "full", "full"]
        assert json.loads(rows[-1][2])["email"] == "user@x"
        persons = await person_rows(ch, env.id)
        assert len(persons) == 1 and list(persons.values())[0][1] == 1  # identified

    async def test_both_personless_writes_override(self, client, env, backends):
        ch = backends.clickhouse
        off = {"$process_person_profile": False}
        await send(client, env, event("a", "anon-2", properties=off), event("b", "known-2", properties=off))
        await send(client, env, event("$identify", "known-2", properties={"$anon_distinct_id": "anon-2"}))
        assert await overrides(ch, env.id) == {"anon-2": str(person_uuid(env.id, "known-2"))}
        assert await unique_persons(ch, env.id) == 1

    async def test_merge_two_persons(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("a", "p-anon", **{"$set": {"a": 1, "shared": "anon"}}),
                   event("b", "p-user", **{"$set": {"b": 2, "shared": "user"}}))
        await send(client, env, event("$identify", "p-user", properties={"$anon_distinct_id": "p-anon"}))
        target = str(person_uuid(env.id, "p-user"))
        assert await person_of(ch, env.id, "p-anon") == target
        assert await overrides(ch, env.id) == {"p-anon": target}
        persons = await person_rows(ch, env.id)
        assert persons[target][0] == {"a": 1, "b": 2, "shared": "user"}
        assert persons[str(person_uuid(env.id, "p-anon"))][2] == 1  # tombstone
        assert await unique_persons(ch, env.id) == 1
        async with backends.sessionmaker() as session:
            stored = (await session.scalars(select(Person).where(Person.environment_id == env.id))).all()
            assert [str(p.id) for p in stored] == [target]
            dids = (await session.scalars(select(PersonDistinctId).where(PersonDistinctId.environment_id == env.id))).all()
            assert {d.distinct_id: (str(d.person_id), d.version) for d in dids} == {
                "p-user": (target, 0), "p-anon": (target, 1)}

    async def test_already_identified_is_not_merged(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("$identify", "id-a", properties={"$anon_distinct_id": "anon-a"}),
                   event("$identify", "id-b", properties={"$anon_distinct_id": "anon-b"}))
        before = metrics.get("capture_warnings_total", "cannot_merge_already_identified")
        await send(client, env, event("$identify", "id-b", properties={"$anon_distinct_id": "id-a"}))
        assert metrics.get("capture_warnings_total", "cannot_merge_already_identified") == before + 1
        assert await person_of(ch, env.id, "id-a") != await person_of(ch, env.id, "id-b")

    async def test_alias_and_illegal_ids(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("$create_alias", "old-id", properties={"alias": "new-id"}))
        assert await person_of(ch, env.id, "old-id") == await person_of(ch, env.id, "new-id") is not None
        await send(client, env, event("$identify", "someone", properties={"$anon_distinct_id": "undefined"}))
        assert await person_of(ch, env.id, "undefined") is None

    async def test_merge_dangerously_merges_identified(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("$identify", "m-a", properties={"$anon_distinct_id": "m-anon-a"}),
                   event("$identify", "m-b", properties={"$anon_distinct_id": "m-anon-b"}))
        await send(client, env, event("$merge_dangerously", "m-b", properties={"alias": "m-a"}))
        ids = {await person_of(ch, env.id, d) for d in ("m-a", "m-b", "m-anon-a", "m-anon-b")}
        assert len(ids) == 1


class TestProperties:
    async def test_set_set_once_unset(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("e1", "u", **{"$set": {"name": "A", "tmp": 1}, "$set_once": {"first": "x"}}))
        await send(client, env, event("e2", "u", **{"$set": {"name": "B"}, "$set_once": {"first": "y"}}),
                   event("e3", "u", properties={"$unset": ["tmp"]}))
        rows = await events(ch, env.id, columns="event, person_properties")
        assert [json.loads(r[1]) for r in rows] == [
            {"name": "A", "tmp": 1, "first": "x"}, {"name": "B", "tmp": 1, "first": "x"}, {"name": "B", "first": "x"}]
        persons = await person_rows(ch, env.id)
        assert list(persons.values())[0][0] == {"name": "B", "first": "x"}

    async def test_duplicate_does_not_reapply_person_updates(self, client, env, backends):
        first = event("e1", "dup-user", **{"$set": {"name": "A"}})
        await send(client, env, first)
        await send(client, env, event("e2", "dup-user", **{"$set": {"name": "B"}}))
        await send(client, env, first)  # an SDK retry of the first event
        persons = await person_rows(backends.clickhouse, env.id)
        assert list(persons.values())[0][0] == {"name": "B"}

    async def test_unset_object_form_and_engage(self, client, env, backends):
        await send(client, env, event("e", "eng", **{"$set": {"a": 1, "b": 2}}))
        await send(client, env, event("e", "eng", properties={"$unset": {"a": None}}))
        r = await client.post("/engage/", json={"api_key": env.creds.project_api_key, "distinct_id": "eng",
                                                "$set": {"c": 3}})
        assert r.status_code == 200
        rows = await events(backends.clickhouse, env.id, columns="event")
        assert [r[0] for r in rows][-1] == "$identify"
        persons = await person_rows(backends.clickhouse, env.id)
        assert list(persons.values())[0][0] == {"b": 2, "c": 3}

    async def test_exception_row_shows_its_set_without_updating_the_person(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("e1", "exc-user", **{"$set": {"name": "A"}}))
        await send(client, env, event("$exception", "exc-user", **{"$set": {"name": "B", "plan": "pro"}}))
        rows = await events(ch, env.id, columns="event, person_properties")
        assert json.loads(dict(rows)["$exception"]) == {"name": "B", "plan": "pro"}  # §9.7 overlay
        persons = await person_rows(ch, env.id)
        assert list(persons.values())[0][0] == {"name": "A"}  # §9.3: no update from $exception

    async def test_personless_creates_no_person(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("e", "nobody", properties={"$process_person_profile": False},
                                      **{"$set": {"x": 1}}))
        rows = await events(ch, env.id, columns="person_mode, person_properties, toString(person_id), properties")
        assert rows[0][:3] == ("propertyless", "{}", str(person_uuid(env.id, "nobody")))
        assert "$set" not in json.loads(rows[0][3])
        assert await person_rows(ch, env.id) == {}


class TestGroups:
    async def test_group_identify_and_group_columns(self, client, env, backends):
        ch = backends.clickhouse
        await send(client, env, event("$groupidentify", "g-user", properties={
            "$group_type": "company", "$group_key": "acme", "$group_set": {"plan": "enterprise"}}))
        await send(client, env, event("$groupidentify", "g-user", properties={
            "$group_type": "company", "$group_key": "acme", "$group_set": {"size": 50}}))
        await send(client, env, event("used", "g-user", properties={"$groups": {"company": "acme", "project": 42}}))
        result = await ch.execute(
            "SELECT group_type_index, group_key, argMax(group_properties, updated_at) FROM groups"
            " WHERE team_id = {t:Int64} GROUP BY group_type_index, group_key", {"t": env.id})
        assert [(r[0], r[1], json.loads(r[2])) for r in result.rows] == [(0, "acme", {"plan": "enterprise", "size": 50})]
        rows = await ch.execute(
            "SELECT `$group_0`, `$group_1` FROM events WHERE team_id = {t:Int64} AND event = 'used'", {"t": env.id})
        assert rows.rows == [("acme", "42")]

    async def test_group_properties_on_event_rows(self, client, env, backends):
        """groupN_properties / groupN_created_at: the group's state when the event was ingested."""
        ch = backends.clickhouse
        await send(client, env, event("$groupidentify", "gp", properties={
            "$group_type": "company", "$group_key": "acme", "$group_set": {"plan": "free"}}))
        await send(client, env, event("$groupidentify", "gp", properties={
            "$group_type": "project", "$group_key": "p1", "$group_set": {"name": "Web"}}))
        await send(client, env, event("before", "gp", properties={"$groups": {"company": "acme", "project": "p1"}}))
        await send(client, env, event("$groupidentify", "gp", properties={
            "$group_type": "company", "$group_key": "acme", "$group_set": {"plan": "pro"}}),
            event("after", "gp", properties={"$groups": {"company": "acme", "project": "unknown"}}),
            event("personless", "gp", properties={"$groups": {"company": "acme"}, "$process_person_profile": False}))
        result = await ch.execute(
            "SELECT event, group0_properties, toUnixTimestamp(group0_created_at) > 0, group1_properties,"
            " toUnixTimestamp(group1_created_at) > 0, group2_properties"
            " FROM events WHERE team_id = {t:Int64} AND event != '$groupidentify'", {"t": env.id})
        rows = {r[0]: r[1:] for r in result.rows}
        assert json.loads(rows["before"][0]) == {"plan": "free"} and rows["before"][1] == 1
        assert json.loads(rows["before"][2]) == {"name": "Web"} and rows["before"][3] == 1
        assert rows["before"][4] == ""
        # the same request's earlier $groupidentify is applied first; an unknown group stays empty
        assert json.loads(rows["after"][0]) == {"plan": "pro"}
        assert rows["after"][2:4] == ("", 0)
        # like `$group_N`, group columns are written for person-processed events only
        assert rows["personless"][:2] == ("", 0)

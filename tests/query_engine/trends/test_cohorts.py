"""Cohort property filters (§5.6, §12.6): membership from `cohortpeople` at the cohort's current
version (sign-collapsed) or from `person_static_cohort`, `in`/`not_in`/legacy `negation`."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.errors import QueryError
from app.models.cohort import Cohort
from app.query_engine.scope import CohortInfo, Scope
from app.query_engine.trends.runner import TrendsRunner
from app.schemas.query import parse_query
from app.services.cohorts import cohort_ids
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events, person_uuid

NOW = "2020-01-12T12:00:00Z"
RANGE = {"date_from": "2020-01-10", "date_to": "2020-01-12"}


async def add_cohort(engine, name: str, *, is_static: bool = False, version: int | None = None,
                     deleted: bool = False) -> int:
    async with engine.backends.sessionmaker() as session:
        cohort = Cohort(environment_id=engine.env_id, name=name, is_static=is_static, version=version,
                        deleted=deleted)
        session.add(cohort)
        await session.commit()
        return cohort.id


async def add_members(engine, cohort_id: int, rows: list[tuple[str, int, int]]) -> None:
    """(distinct id of the person, version, sign) rows of `cohortpeople`."""
    await engine.ch.insert("cohortpeople", ["person_id", "cohort_id", "team_id", "sign", "version"],
                           [[person_uuid(d, engine.env_id), cohort_id, engine.env_id, sign, version]
                            for d, version, sign in rows])


async def add_static_members(engine, cohort_id: int, distinct_ids: list[str]) -> None:
    import uuid

    await engine.ch.insert("person_static_cohort", ["id", "person_id", "cohort_id", "team_id"],
                           [[str(uuid.uuid4()), person_uuid(d, engine.env_id), cohort_id, engine.env_id]
                            for d in distinct_ids])


@pytest.fixture
async def data(engine):
    await insert_events(engine.ch, engine.env_id, [
        {"event": "e", "distinct_id": d, "timestamp": "2020-01-11T10:00:00Z"} for d in ("a", "b", "c")
    ] + [{"event": "e", "distinct_id": "a", "timestamp": "2020-01-12T10:00:00Z"}])
    ids = {}
    # version 1 is stale; in version 2, b was added and then cancelled: members {a}
    ids["dynamic"] = await add_cohort(engine, "Dynamic", version=2)
    await add_members(engine, ids["dynamic"], [("a", 1, 1), ("b", 1, 1), ("c", 1, 1),
                                               ("a", 2, 1), ("b", 2, 1), ("b", 2, -1)])
    ids["static"] = await add_cohort(engine, "Static", is_static=True)
    await add_static_members(engine, ids["static"], ["b", "c"])
    # no version in PostgreSQL: the newest calculated one (3) counts
    ids["unversioned"] = await add_cohort(engine, "Unversioned")
    await add_members(engine, ids["unversioned"], [("c", 1, 1), ("a", 3, 1), ("b", 3, 1)])
    ids["deleted"] = await add_cohort(engine, "Deleted", version=1, deleted=True)
    await add_members(engine, ids["deleted"], [("c", 1, 1)])
    engine.cohorts = ids
    return engine


async def count(engine, *props) -> int:
    rows = await engine.results(trends(events("e", properties=list(props)), dateRange=RANGE), now=NOW)
    return int(rows[0]["count"])


def cohort(cohort_id, **kw):
    return {"type": "cohort", "key": "id", "value": cohort_id, **kw}


class TestCohortFilter:
    async def test_dynamic_cohort_uses_current_version_and_sign(self, data):
        assert await count(data, cohort(data.cohorts["dynamic"])) == 2  # a's two events

    async def test_not_in(self, data):
        assert await count(data, cohort(data.cohorts["dynamic"], operator="not_in")) == 2  # b, c

    async def test_legacy_negation(self, data):
        assert await count(data, cohort(data.cohorts["dynamic"], negation=True)) == 2

    async def test_static_cohort(self, data):
        assert await count(data, cohort(data.cohorts["static"])) == 2
        assert await count(data, cohort(data.cohorts["static"], operator="not_in")) == 2  # a twice

    async def test_cohort_without_version_uses_newest(self, data):
        assert await count(data, cohort(data.cohorts["unversioned"])) == 3  # a twice, b

    async def test_deleted_cohort_still_filters(self, data):
        # PostHog resolves the id without looking at `deleted`
        assert await count(data, cohort(data.cohorts["deleted"])) == 1

    async def test_cohort_id_as_string_and_in_groups(self, data):
        group = {"type": "AND", "values": [{"type": "OR", "values": [
            cohort(str(data.cohorts["static"])), {"type": "event", "key": "x", "operator": "is_set"}]}]}
        rows = await data.results(trends(events("e"), dateRange=RANGE, properties=group), now=NOW)
        assert rows[0]["count"] == 2

    async def test_unknown_cohort_is_400(self, data):
        with pytest.raises(QueryError) as exc:
            await count(data, cohort(999_999_999))
        assert exc.value.attr == "query.series[0].properties[0].value"

    async def test_other_environments_cohort_is_unknown(self, data, backends):
        from tests.conftest import new_env

        other = await new_env(backends)
        async with backends.sessionmaker() as session:
            theirs = Cohort(environment_id=other.id, name="Theirs", is_static=True)
            session.add(theirs)
            await session.commit()
        with pytest.raises(QueryError):
            await count(data, cohort(theirs.id))

    async def test_through_the_query_api(self, data, client, env):
        from app import clock

        query = trends(events("e", properties=[cohort(data.cohorts["dynamic"], operator="not_in")]), dateRange=RANGE)
        clock.freeze(NOW)
        try:
            r = await client.post(f"/api/environments/{env.id}/query/", json={"query": query}, headers=env.headers)
            missing = await client.post(f"/api/environments/{env.id}/query/", headers=env.headers,
                                        json={"query": trends(events("e", properties=[cohort(123456789)]))})
        finally:
            clock.freeze(None)
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["data"] == [0, 2, 0]
        assert missing.status_code == 400 and "cohort 123456789 does not exist" in missing.text


class TestCohortSql:
    def test_membership_subqueries(self):
        scope = Scope(7, "UTC", datetime(2020, 1, 12, 12, tzinfo=timezone.utc), has_overrides=False)
        scope.cohorts = {5: CohortInfo(5, "Five", False, 3), 6: CohortInfo(6, "Six", True, None)}
        q = parse_query(trends(events("e", properties=[cohort(5), cohort(6, operator="not_in")]), dateRange=RANGE))
        compiled = TrendsRunner(q, scope).compile()[0]
        assert compiled.sql == (
            "SELECT toDate(toTimeZone(`e`.`timestamp`, {p0:String})) AS `bucket`, count() AS `value`\n"
            "FROM `events` AS `e`\n"
            "WHERE ((`e`.`team_id` = {p1:Int64}) AND (`e`.`timestamp` >= {p2:DateTime64(6, 'UTC')}) AND "
            "(`e`.`timestamp` <= {p3:DateTime64(6, 'UTC')}) AND (`e`.`event` = {p4:String}) AND (`e`.`person_id` IN (\n"
            "SELECT `person_id`\nFROM `cohortpeople`\n"
            "WHERE ((`team_id` = {p1:Int64}) AND (`cohort_id` = {p5:Int64}) AND (`version` = {p6:UInt64}))\n"
            "GROUP BY `person_id`\nHAVING (sum(`sign`) > 0)\n"
            ")) AND (NOT (`e`.`person_id` IN (\n"
            "SELECT `person_id`\nFROM `person_static_cohort`\n"
            "WHERE ((`team_id` = {p1:Int64}) AND (`cohort_id` = {p7:Int64}))\n"
            "))))\n"
            "GROUP BY `bucket`")
        assert (compiled.params["p1"], compiled.params["p5"], compiled.params["p6"], compiled.params["p7"]) == (7, 5, 3, 6)

    def test_cohort_ids_are_found_anywhere(self):
        query = {"kind": "InsightVizNode", "source": trends(
            events("e", properties=[cohort(1)]), properties={"type": "AND", "values": [
                {"type": "OR", "values": [cohort("2"), {"type": "event", "key": "x", "value": 3}]}]},
            breakdownFilter={"breakdown_type": "cohort", "breakdown": [4, "all"]})}
        assert cohort_ids(query, [cohort(5)]) == {1, 2, 4, 5}


async def breakdown(engine, cohorts, *series, **fields):
    query = trends(*(series or (events("e"),)), dateRange=RANGE,
                   breakdownFilter={"breakdown_type": "cohort", "breakdown": cohorts}, **fields)
    return await engine.results(query, now=NOW)


class TestCohortBreakdown:
    async def test_cohort_and_all_run_one_query_each(self, data):
        rows = await breakdown(data, [data.cohorts["dynamic"], "all"])
        assert [(r["label"], r["breakdown_value"], r["data"]) for r in rows] == [
            ("e - Dynamic", data.cohorts["dynamic"], [0, 1, 1]), ("e - all users", "all", [0, 3, 1])]

    async def test_single_cohort_label_has_no_prefix(self, data):
        rows = await breakdown(data, [data.cohorts["static"]])
        assert [(r["label"], r["breakdown_value"], r["count"]) for r in rows] == [
            ("Static", data.cohorts["static"], 2)]

    async def test_several_cohorts_are_ranked_by_total(self, data):
        rows = await breakdown(data, [data.cohorts["dynamic"], data.cohorts["unversioned"]])
        # one (conjoined) query upstream: no series prefix, ranked by total; a person may be in both
        assert [(r["label"], r["count"]) for r in rows] == [("Unversioned", 3), ("Dynamic", 2)]

    async def test_cohort_without_events_has_no_row(self, data):
        empty = await add_cohort(data, "Nobody", version=1)
        await add_members(data, empty, [("zz", 1, 1)])
        rows = await breakdown(data, [empty, "all"])
        assert [r["breakdown_value"] for r in rows] == ["all"]

    async def test_series_major_order(self, data):
        rows = await breakdown(data, ["all", data.cohorts["static"]], events("e"), events("e", math="dau"))
        assert [(r["label"], r["count"]) for r in rows] == [
            ("e - all users", 4), ("e - Static", 2), ("e - all users", 4), ("e - Static", 2)]
        assert [r["action"]["order"] for r in rows] == [0, 0, 1, 1]

    async def test_formula_per_cohort(self, data):
        rows = await breakdown(data, [data.cohorts["static"], "all"], events("e"), events("e", math="dau"),
                               trendsFilter={"formula": "A - B"})
        assert sorted((r["breakdown_value"], r["data"]) for r in rows if r["breakdown_value"] == "all") == [
            ("all", [0, 0, 0])]
        assert {r["breakdown_value"] for r in rows} == {"all", data.cohorts["static"]}

    async def test_total_value(self, data):
        rows = await breakdown(data, [data.cohorts["dynamic"], "all"], events("e", math="dau"),
                               trendsFilter={"display": "ActionsPie"})
        assert [(r["breakdown_value"], r["aggregated_value"]) for r in rows] == [(data.cohorts["dynamic"], 1),
                                                                                 ("all", 3)]

    async def test_compare(self, data):
        rows = await breakdown(data, [data.cohorts["dynamic"]], compareFilter={"compare": True})
        assert [(r["compare_label"], r["breakdown_value"]) for r in rows] == [("current", data.cohorts["dynamic"])]

    async def test_unknown_cohort_is_400(self, data):
        with pytest.raises(QueryError) as exc:
            await breakdown(data, ["all", 987654321])
        assert exc.value.attr == "query.breakdownFilter.breakdown[1]"

    async def test_bad_item_is_400(self, data):
        with pytest.raises(QueryError) as exc:
            await breakdown(data, ["everyone"])
        assert exc.value.attr == "query.breakdownFilter.breakdown[0]"

    async def test_subquery_modifier_runs_one_query_per_cohort(self, data):
        rows = await breakdown(data, [data.cohorts["dynamic"], data.cohorts["unversioned"]],
                               modifiers={"inCohortVia": "subquery"})
        assert [(r["label"], r["count"]) for r in rows] == [("e - Dynamic", 2), ("e - Unversioned", 3)]


class TestCohortTables:
    @pytest.mark.parametrize(("table", "engine", "sorting_key"), [
        ("cohortpeople", "CollapsingMergeTree", "team_id, cohort_id, person_id, version"),
        ("person_static_cohort", "ReplacingMergeTree", "team_id, cohort_id, person_id, id"),
    ])
    async def test_created_by_migration_2(self, ch_executor, table, engine, sorting_key):
        result = await ch_executor.execute(
            "SELECT engine, sorting_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            {"db": ch_executor.database, "t": table})
        assert result.rows[0][0].endswith(engine) and result.rows[0][1] == sorting_key

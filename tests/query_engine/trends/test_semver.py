"""Semver property operators (§5.5, newest PostHog): strict `X.Y.Z` versions (optional `v`, pre-release
or build suffix, surrounding blanks) compared as integer triples; invalid or missing versions fail
every operator; `~`, `^` and wildcard ranges as [lower, upper)."""

from __future__ import annotations

import pytest

from app.errors import QueryError
from app.query_engine import ir
from app.query_engine.printer import print_select
from app.query_engine.properties import filter_expr
from app.query_engine.scope import Scope
from app.schemas.query.properties import PropertyFilterList
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events

NOW = "2020-01-12T12:00:00Z"
RANGE = {"date_from": "2020-01-10", "date_to": "2020-01-12"}
VERSIONS = ["1.2.3", "v1.2.10", "1.10.0", "2.0.0-beta.1", "0.2.5", "0.0.3", " 1.2.4+build.7 ", "1.3.0",
            "1.2", "01.2.3", "1.2.3.4", "abc", None]


@pytest.fixture
async def data(engine):
    await insert_events(engine.ch, engine.env_id, [
        {"event": "e", "distinct_id": f"u{i}", "timestamp": "2020-01-11T10:00:00Z",
         "properties": {} if version is None else {"app_version": version}}
        for i, version in enumerate(VERSIONS)
    ])
    return engine


def _filter(operator, value):
    return {"type": "event", "key": "app_version", "operator": operator, "value": value}


async def _count(engine, operator, value) -> int:
    rows = await engine.results(trends(events("e", properties=[_filter(operator, value)]), dateRange=RANGE),
                                now=NOW)
    return int(rows[0]["count"])


class TestSemverOperators:
    @pytest.mark.parametrize(("operator", "value", "expected"), [
        ("semver_eq", "1.2.3", 1),
        ("semver_eq", "v1.2.3", 1),
        ("semver_eq", "1.2.3-rc.1", 1),  # the suffix is ignored on both sides
        ("semver_eq", "2.0.0", 1),
        ("semver_eq", "1.2", 0),  # not a full version: matches nothing
        # invalid (1.2, 01.2.3, 1.2.3.4, abc) and missing versions fail != too
        ("semver_neq", "1.2.3", 7),
        ("semver_gt", "1.2.3", 5),  # 1.2.10, 1.10.0, 2.0.0, 1.2.4, 1.3.0 (numeric, not text order)
        ("semver_gte", "1.2.3", 6),
        ("semver_lt", "1.2.3", 2),  # 0.2.5, 0.0.3
        ("semver_lte", "1.2.4", 4),  # 1.2.3, 0.2.5, 0.0.3, 1.2.4
        ("semver_tilde", "1.2.3", 3),  # [1.2.3, 1.3.0): 1.2.3, 1.2.10, 1.2.4
        ("semver_tilde", "1.2", 3),  # [1.2.0, 1.3.0)
        ("semver_caret", "1.2.3", 5),  # [1.2.3, 2.0.0): 1.2.3, 1.2.10, 1.10.0, 1.2.4, 1.3.0
        ("semver_caret", "0.2.3", 1),  # [0.2.3, 0.3.0)
        ("semver_caret", "0.0.3", 1),  # [0.0.3, 0.0.4)
        ("semver_wildcard", "1.*", 5),  # [1.0.0, 2.0.0)
        ("semver_wildcard", "1.2.*", 3),  # [1.2.0, 1.3.0)
        ("semver_wildcard", "2", 1),  # [2.0.0, 3.0.0)
        ("semver_wildcard", "1.2.3.*", 0),  # four-part bounds are never valid versions
    ])
    async def test_operator(self, data, operator, value, expected):
        assert await _count(data, operator, value) == expected

    @pytest.mark.parametrize(("operator", "value"), [
        ("semver_tilde", "1"), ("semver_caret", "v1.2.3"), ("semver_wildcard", "*"), ("semver_caret", "x.y"),
        ("semver_eq", 1.2), ("semver_gt", ["1.2.3"]),
    ])
    async def test_invalid_filter_value_is_400(self, engine, operator, value):
        with pytest.raises(QueryError) as exc:
            await _count(engine, operator, value)
        assert exc.value.status_code == 400 or exc.value.status_code == 422

    async def test_person_property(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "p", "timestamp": "2020-01-11T10:00:00Z",
             "person_properties": {"app_version": "3.1.0"}},
        ])
        rows = await engine.results(trends(events("e", properties=[
            {**_filter("semver_gte", "3.0.0"), "type": "person"}]), dateRange=RANGE), now=NOW)
        assert rows[0]["count"] == 1


class TestSemverSql:
    def test_golden(self):
        flt = PropertyFilterList(filters=[_filter("semver_caret", "1.2.3")]).filters[0]
        scope = Scope(7, "UTC", None)  # type: ignore[arg-type]
        expr = filter_expr(scope, flt, "query.properties[0]")
        sql, params = print_select(ir.Select(columns=(ir.Alias(expr, "hit"),), from_=ir.Table("events"),
                                             from_alias="e"))
        version = ("extract(ifNull(if(startsWith(JSONExtractRaw(`e`.`properties`, {p0:String}), {p1:String}), "
                   "substring(JSONExtractRaw(`e`.`properties`, {p0:String}), 2, (length(JSONExtractRaw("
                   "`e`.`properties`, {p0:String})) - 2)), nullIf(nullIf(JSONExtractRaw(`e`.`properties`, "
                   "{p0:String}), {p2:String}), {p3:String})), {p2:String}), {p4:String})")
        key = f"arrayMap(((`part`) -> accurateCastOrNull(`part`, {{p5:String}})), splitByChar({{p6:String}}, {version}))"
        assert sql == (f"SELECT (notEmpty({version}) AND ({key} >= {{p7:Array(Int64)}}) AND "
                       f"({key} < {{p8:Array(Int64)}})) AS `hit`\nFROM `events` AS `e`")
        assert params["p7"] == [1, 2, 3] and params["p8"] == [2, 0, 0] and params["p6"] == "."
        assert params["p5"] == "Int64" and "1.2.3" not in sql

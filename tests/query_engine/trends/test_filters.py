"""Property filters (§5): every operator with its NULL rules, typed properties, groups of filters,
person/group/element/metadata filters and test-account filters, executed on chDB."""

from __future__ import annotations

import pytest

from app.errors import QueryError
from app.models.definitions import PERSON_PROPERTY
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events, insert_group, insert_override, insert_person

NOW = "2020-01-12T12:00:00Z"
RANGE = {"date_from": "2020-01-10", "date_to": "2020-01-12"}
# One event per distinct id on 2020-01-11, each with different `$browser`/`n`/`flag`/`when` values.
PROPS = {
    "chrome": {"$browser": "Chrome", "n": 10, "flag": True, "when": "2020-01-05T00:00:00Z", "url": "https://a.com/x"},
    "safari": {"$browser": "Safari", "n": "9", "flag": False, "when": "2020-01-09", "url": "https://b.com/y_z"},
    "empty": {"$browser": "", "n": 1.5},
    "null": {"$browser": None, "n": None},
    "missing": {},
}


@pytest.fixture
async def data(engine):
    await insert_events(engine.ch, engine.env_id, [
        {"event": "e", "distinct_id": name, "timestamp": "2020-01-11T10:00:00Z", "properties": props,
         "person_properties": {"email": f"{name}@{'corp.com' if name == 'chrome' else 'gmail.com'}"}}
        for name, props in PROPS.items()
    ])
    return engine


async def count(engine, *props, **query) -> int:
    rows = await engine.results(trends(events("e", properties=list(props)), dateRange=RANGE, **query), now=NOW)
    return int(rows[0]["count"])


def f(key, operator, value=None, **kw):
    return {"type": kw.pop("type", "event"), "key": key, "operator": operator, "value": value, **kw}


class TestOperators:
    @pytest.mark.parametrize(("flt", "expected"), [
        (f("$browser", "exact", "Chrome"), 1),
        (f("$browser", "exact", ["Chrome", "Safari"]), 2),
        (f("$browser", "exact", []), 5),
        (f("$browser", "exact", ""), 1),  # the empty string is a value, not missing
        (f("$browser", "is_not", "Chrome"), 4),  # missing and null pass
        (f("$browser", "is_not", ["Chrome", "Safari"]), 3),
        (f("$browser", "icontains", "hro"), 1),
        (f("$browser", "icontains", "R"), 2),  # case-insensitive: chRome, safaRi
        (f("$browser", "not_icontains", "hro"), 4),
        (f("$browser", "icontains", ["chr", "saf"]), 2),
        (f("$browser", "not_icontains", ["chr", "saf"]), 3),
        (f("url", "icontains", "y_z"), 1),
        (f("$browser", "regex", "^(Chr|Saf)"), 2),
        (f("$browser", "not_regex", "^Chr"), 4),
        (f("$browser", "is_set"), 3),
        (f("$browser", "is_not_set"), 2),
        (f("n", "gt", 9), 1),
        (f("n", "gte", 9), 2),
        (f("n", "lt", 9), 1),
        (f("n", "lte", 9.5), 2),
        (f("n", "min", 9), 2),
        (f("n", "max", 2), 1),
        (f("n", "between", [1, 9]), 2),
        (f("n", "not_between", [1, 9]), 1),
        (f("$browser", "gt", "D"), 1),  # a string value compares as a string
        (f("flag", "exact", True), 1),
        (f("flag", "exact", "false"), 1),
        (f("flag", "exact", [True, False]), 2),
        (f("$browser", "in", ["Chrome", "x"]), 1),
        (f("$browser", "not_in", ["Chrome"]), 4),
        (f("when", "is_date_before", "2020-01-06"), 1),
        (f("when", "is_date_after", "2020-01-06"), 1),
        (f("when", "is_date_after", "-5d"), 1),
        (f("when", "is_date_exact", "2020-01-09T00:00:00"), 1),
        (f("$browser", "flag_evaluates_to", "x"), 5),
        (f("$browser", "is_cleaned_path_exact", "Chrome"), 1),
        (f("$browser", "icontains_multi", ["chr", "xx"]), 1),
        (f("$browser", "not_icontains_multi", ["chr", "xx"]), 4),
    ])
    async def test_operator(self, data, flt, expected):
        assert await count(data, flt) == expected

    async def test_default_operator_is_exact(self, data):
        assert await count(data, {"key": "$browser", "value": "Safari"}) == 1

    async def test_between_needs_two_ordered_numbers(self, data):
        with pytest.raises(QueryError) as exc:
            await count(data, f("n", "between", [9, 1]))
        assert exc.value.attr == "query.series[0].properties[0]"

    async def test_in_needs_a_list(self, data):
        with pytest.raises(QueryError):
            await count(data, f("n", "in", "x"))

    async def test_semver_on_non_versions_matches_nothing(self, data):
        # numbers and missing values are not versions (semver operators: test_semver.py)
        assert await count(data, f("n", "semver_neq", "1.0.0")) == 0


class TestTypedProperties:
    async def test_numeric_type_compares_numbers(self, data):
        assert await count(data, f("n", "gt", "2")) == 1  # untyped: "9" > "2" but "10" < "2" as strings
        await data.property_type("n", "Numeric")
        assert await count(data, f("n", "gt", "2")) == 2
        assert await count(data, f("n", "exact", 10)) == 1
        assert await count(data, f("n", "lt", "9.5")) == 2

    async def test_datetime_type(self, data):
        await data.property_type("when", "DateTime")
        assert await count(data, f("when", "gt", "2020-01-06")) == 1
        assert await count(data, f("when", "is_date_before", "2020-01-06")) == 1

    async def test_person_property_type(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "person_properties": {"age": "30"}},
            {"event": "e", "distinct_id": "b", "timestamp": "2020-01-11T10:00:00Z", "person_properties": {"age": "4"}},
        ])
        await engine.property_type("age", "Numeric", type_=PERSON_PROPERTY)
        assert await count(engine, f("age", "gt", "10", type="person")) == 1


class TestGroups:
    async def test_or_group_nested(self, data):
        group = {"type": "OR", "values": [
            {"type": "AND", "values": [f("$browser", "exact", "Chrome"), f("n", "gt", 5)]},
            {"type": "AND", "values": [f("$browser", "exact", "Safari")]},
        ]}
        assert await count(data, properties=group) == 2

    async def test_empty_group_is_true(self, data):
        assert await count(data, properties={"type": "AND", "values": []}) == 5

    async def test_global_and_series_filters_are_anded(self, data):
        rows = await data.results(trends(events("e", properties=[f("n", "is_set")]), dateRange=RANGE,
                                         properties=[f("$browser", "is_set")]), now=NOW)
        assert rows[0]["count"] == 3


class TestPersonProperties:
    async def test_properties_on_events(self, data):
        assert await count(data, f("email", "icontains", "corp.com", type="person")) == 1

    async def test_joined_mode_reads_current_person(self, engine):
        await insert_person(engine.ch, engine.env_id, ["a"], {"plan": "pro"})
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "person_properties": {"plan": "free"}},
            {"event": "e", "distinct_id": "nobody", "timestamp": "2020-01-11T10:00:00Z"},
        ])
        flt = f("plan", "exact", "pro", type="person")
        assert await count(engine, flt) == 0
        joined = {"personsOnEventsMode": "person_id_override_properties_joined"}
        assert await count(engine, flt, modifiers=joined) == 1
        assert await count(engine, f("plan", "is_not_set", type="person"), modifiers=joined) == 1
        assert await count(engine, flt, modifiers={"personsOnEventsMode": "disabled"}) == 1

    async def test_overrides_merge_persons_for_dau(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "anon", "timestamp": "2020-01-11T10:00:00Z"},
            {"event": "e", "distinct_id": "user", "timestamp": "2020-01-11T11:00:00Z"},
        ])
        await insert_override(engine.ch, engine.env_id, "anon", "user")
        rows = await engine.results(trends(events("e", math="dau"), dateRange=RANGE), now=NOW)
        assert rows[0]["data"][1] == 1
        rows = await engine.results(trends(events("e", math="dau"), dateRange=RANGE, modifiers={
            "personsOnEventsMode": "person_id_no_override_properties_on_events"}), now=NOW)
        assert rows[0]["data"][1] == 2


class TestOtherFilterTypes:
    async def test_group_property(self, engine):
        await insert_group(engine.ch, engine.env_id, 1, "acme", {"industry": "tech"})
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "properties": {"$group_1": "acme"}},
            {"event": "e", "distinct_id": "b", "timestamp": "2020-01-11T10:00:00Z", "properties": {"$group_1": "other"}},
        ])
        assert await count(engine, f("industry", "exact", "tech", type="group", group_type_index=1)) == 1
        assert await count(engine, f("industry", "is_not", "tech", type="group", group_type_index=1)) == 1
        assert await count(engine, f("industry", "exact", "tech", type="group")) == 2  # no index: ignored

    async def test_event_metadata(self, data):
        assert await count(data, f("distinct_id", "exact", "safari", type="event_metadata")) == 1

    async def test_unknown_metadata_column(self, data):
        with pytest.raises(QueryError) as exc:
            await count(data, f("properties", "exact", "x", type="event_metadata"))
        assert exc.value.attr == "query.series[0].properties[0].key"

    @pytest.mark.parametrize("ftype", ["cohort", "hogql", "session", "data_warehouse"])
    async def test_unsupported_types_are_400(self, data, ftype):
        flt = {"type": ftype, "key": "id" if ftype == "cohort" else "x", "value": 1}
        with pytest.raises(QueryError):
            await count(data, flt)


class TestElements:
    CHAIN = 'button.btn.primary:attr__class="btn primary"attr_id="buy"href="/pay"nth-child="2"nth-of-type="1"text="Buy now";div.card:nth-child="0"nth-of-type="0"'

    @pytest.fixture
    async def clicks(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "$autocapture", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "elements_chain": self.CHAIN},
            {"event": "$autocapture", "distinct_id": "b", "timestamp": "2020-01-11T10:00:00Z",
             "elements_chain": 'a:href="/home"nth-child="0"nth-of-type="0"text="Home"'},
        ])
        return engine

    async def clicks_count(self, engine, *props):
        rows = await engine.results(trends(events("$autocapture", properties=list(props)), dateRange=RANGE), now=NOW)
        return int(rows[0]["count"])

    @pytest.mark.parametrize(("flt", "expected"), [
        (f("tag_name", "exact", "button", type="element"), 1),
        (f("tag_name", "is_not", "button", type="element"), 1),
        (f("tag_name", "exact", ["button", "a"], type="element"), 2),
        (f("selector", "exact", "button.primary", type="element"), 1),
        (f("selector", "exact", "div > button#buy", type="element"), 1),
        (f("selector", "exact", "div.card a", type="element"), 0),
        (f("href", "exact", "/pay", type="element"), 1),
        (f("href", "icontains", "HOME", type="element"), 1),
        (f("text", "exact", "Home", type="element"), 1),
        (f("text", "icontains", "now", type="element"), 1),
        (f("text", "is_not", "Home", type="element"), 1),
        (f("$elements_chain", "icontains", "card", type="event"), 1),
    ])
    async def test_element_filter(self, clicks, flt, expected):
        assert await self.clicks_count(clicks, flt) == expected


class TestTestAccountFilters:
    async def test_applied_only_when_asked(self, data):
        await data.configure(test_account_filters=[
            {"key": "email", "type": "person", "operator": "not_icontains", "value": "corp.com"},
        ])
        assert await count(data) == 5
        assert await count(data, filterTestAccounts=True) == 4

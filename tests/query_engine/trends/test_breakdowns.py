"""Breakdowns (§7): ranking, limits, sentinels, histogram bins, URL normalisation, multiple
breakdowns and breakdowns under other math, executed on chDB."""

from __future__ import annotations

import uuid

import pytest

from app.errors import QueryError
from tests.query_engine.conftest import events, trends
from tests.query_engine.helpers import insert_events, insert_group, person_uuid

NOW = "2020-01-12T12:00:00Z"
RANGE = {"date_from": "2020-01-10", "date_to": "2020-01-12"}
NULL = "$$_posthog_breakdown_null_$$"
OTHER = "$$_posthog_breakdown_other_$$"


def ev(distinct_id, day=11, **props):
    return {"event": "e", "distinct_id": distinct_id, "timestamp": f"2020-01-{day}T10:00:00Z", "properties": props}


@pytest.fixture
async def data(engine):
    await insert_events(engine.ch, engine.env_id, [
        ev("a", b="Chrome", url="https://x.com/a/", n=1), ev("a", b="Chrome", url="https://x.com/a", n=2),
        ev("b", day=10, b="Chrome", url="https://x.com/a?#", n=3),
        ev("c", b="Safari", n=10), ev("d", b="Safari", n=4),
        ev("e", b="Firefox"), ev("f"), ev("g", b=""), ev("h", b="Zed"),
    ])
    return engine


async def rows(engine, breakdown_filter, *, series=None, **query):
    q = trends(*(series or [events("e")]), dateRange=RANGE, breakdownFilter=breakdown_filter, **query)
    response = await engine.query(q, now=NOW)
    return response["results"], response["hasMore"]


class TestEventBreakdown:
    async def test_order_and_values(self, data):
        result, has_more = await rows(data, {"breakdown": "b"})
        assert [r["breakdown_value"] for r in result] == ["Chrome", "Safari", "Firefox", "Zed", NULL]
        assert [r["count"] for r in result] == [3, 2, 1, 1, 2]
        assert result[0]["data"] == [1, 2, 0] and result[0]["label"] == "Chrome"
        assert has_more is False

    async def test_limit_folds_into_other(self, data):
        result, has_more = await rows(data, {"breakdown": "b", "breakdown_limit": 2})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("Chrome", 3), ("Safari", 2), (OTHER, 4)]
        assert has_more is True

    async def test_hide_other(self, data):
        result, has_more = await rows(data, {"breakdown": "b", "breakdown_limit": 2,
                                             "breakdown_hide_other_aggregation": True})
        assert [r["breakdown_value"] for r in result] == ["Chrome", "Safari"] and has_more is True

    async def test_null_takes_a_slot(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 5})
        assert result[-1]["breakdown_value"] == NULL
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 4})
        assert [r["breakdown_value"] for r in result][-2:] == ["Zed", OTHER]

    async def test_normalize_url(self, data):
        result, _ = await rows(data, {"breakdown": "url", "breakdown_normalize_url": True})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("https://x.com/a", 3), (NULL, 6)]

    async def test_numeric_values_as_text(self, data):
        result, _ = await rows(data, {"breakdown": "n", "breakdown_limit": 2})
        assert [r["breakdown_value"] for r in result] == ["1", "10", OTHER]

    async def test_multiple_series_prefix_labels(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 1},
                               series=[events("e"), events("e", math="dau")])
        assert [r["label"] for r in result] == ["e - Chrome", f"e - {OTHER}", "e - Chrome", f"e - {OTHER}"]
        assert [r["count"] for r in result] == [3, 6, 2, 6]

    async def test_total_value(self, data):
        result, _ = await rows(data, {"breakdown": "b"}, trendsFilter={"display": "ActionsPie"})
        assert [(r["breakdown_value"], r["aggregated_value"]) for r in result][:2] == [("Chrome", 3), ("Safari", 2)]
        assert all(r["data"] == [] and r["count"] == 0 for r in result)

    async def test_no_events_gives_no_rows(self, engine):
        result, _ = await rows(engine, {"breakdown": "b"})
        assert result == []


class TestHistogram:
    async def test_bins(self, data):
        result, _ = await rows(data, {"breakdown": "n", "breakdown_histogram_bin_count": 3})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [
            ("[1,4]", 3), ("[4,7]", 1), ("[7,10.01]", 1), (NULL, 4)]  # ties sort by text

    async def test_single_value(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("a", n=4), ev("b", n=4)])
        result, _ = await rows(engine, {"breakdown": "n", "breakdown_histogram_bin_count": 2})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("[4,4.01]", 2)]


class TestOtherSources:
    async def test_person_breakdown(self, engine):
        await insert_events(engine.ch, engine.env_id, [
            {"event": "e", "distinct_id": "a", "timestamp": "2020-01-11T10:00:00Z", "person_properties": {"plan": "pro"}},
            {"event": "e", "distinct_id": "b", "timestamp": "2020-01-11T10:00:00Z"},
        ])
        result, _ = await rows(engine, {"breakdown": "plan", "breakdown_type": "person"})
        assert [r["breakdown_value"] for r in result] == ["pro", NULL]

    async def test_group_breakdown(self, engine):
        await insert_group(engine.ch, engine.env_id, 0, "acme", {"industry": "tech"})
        await insert_events(engine.ch, engine.env_id, [ev("a", **{"$group_0": "acme"}), ev("b")])
        result, _ = await rows(engine, {"breakdown": "industry", "breakdown_type": "group",
                                        "breakdown_group_type_index": 0})
        assert [r["breakdown_value"] for r in result] == ["tech", NULL]

    async def test_group_breakdown_needs_index(self, data):
        with pytest.raises(QueryError) as exc:
            await rows(data, {"breakdown": "industry", "breakdown_type": "group"})
        assert exc.value.attr == "query.breakdownFilter.breakdown_group_type_index"

    async def test_event_metadata(self, data):
        result, _ = await rows(data, {"breakdown": "distinct_id", "breakdown_type": "event_metadata",
                                      "breakdown_limit": 1})
        assert [(r["breakdown_value"], r["count"]) for r in result] == [("a", 2), (OTHER, 7)]

    @pytest.mark.parametrize("btype", ["session", "data_warehouse"])  # hogql: tests/hogql/; cohort: test_cohorts.py
    async def test_unsupported_is_400(self, data, btype):
        with pytest.raises(QueryError) as exc:
            await rows(data, {"breakdown": "x", "breakdown_type": btype})
        assert "not supported" in exc.value.detail


class TestMultiple:
    async def test_two_properties(self, data):
        result, _ = await rows(data, {"breakdowns": [{"property": "b"}, {"property": "n", "histogram_bin_count": 1}],
                                      "breakdown_limit": 3})
        assert [r["breakdown_value"] for r in result] == [
            ["Chrome", "[1,10.01]"], ["Safari", "[1,10.01]"], [NULL, NULL], [OTHER, OTHER]]
        assert result[0]["label"] == "Chrome::[1,10.01]"


class TestWithMath:
    async def test_dau(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 1}, series=[events("e", math="dau")])
        assert [(r["breakdown_value"], r["data"]) for r in result] == [("Chrome", [1, 1, 0]), (OTHER, [0, 6, 0])]

    async def test_weekly_active(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 1},
                               series=[events("e", math="weekly_active")])
        assert result[0]["breakdown_value"] == "Chrome" and result[0]["data"] == [1, 2, 2]

    async def test_first_time_uses_first_event_value(self, engine):
        await insert_events(engine.ch, engine.env_id, [ev("a", day=10, b="Chrome"), ev("a", day=11, b="Safari")])
        result, _ = await rows(engine, {"breakdown": "b"}, series=[events("e", math="first_time_for_user")])
        assert [(r["breakdown_value"], r["data"]) for r in result] == [("Chrome", [1, 0, 0])]

    async def test_property_math(self, data):
        result, _ = await rows(data, {"breakdown": "b", "breakdown_limit": 1},
                               series=[events("e", math="sum", math_property="n")])
        assert result[0]["breakdown_value"] == "Safari" and result[0]["count"] == 14

    @pytest.mark.parametrize(("math", "expected"), [("avg", [7, 2, 0, 0, 0]), ("min", [4, 1, 0, 0, 0]),
                                                    ("max", [10, 3, 0, 0, 0]), ("dau", [2, 2, 1, 1, 2])])
    async def test_merged_math_per_value(self, data, math, expected):
        # Values without any number (Firefox, Zed, no value) are 0, not missing; total-value ranking.
        series = events("e", math=math, **({"math_property": "n"} if math != "dau" else {}))
        result, _ = await rows(data, {"breakdown": "b"}, series=[series], trendsFilter={"display": "ActionsPie"})
        by_value = {r["breakdown_value"]: r["aggregated_value"] for r in result}
        assert [by_value[v] for v in ("Safari", "Chrome", "Firefox", "Zed", NULL)] == expected


# Raw JSON texts of one property, as clients send them: one value in several spellings ("5", 5,
# "\u00e9", "é", "a\/b", "a/b"), strings that look like other types, objects and arrays next to
# strings of their text, escapes, null, "" and a missing key.
RAW_VALUES = [
    '"5"', '5', '5.0', '"5.0"', '"a/b"', '"a\\/b"', '"a\\"b"', '"a\\\\b"', '"é"', '"\\u00e9"', '"\\ud83d\\ude00"',
    '{"x": "y"}', '"{\\"x\\":\\"y\\"}"', '[1, "a"]', '"[1,\\"a\\"]"', '[]', '"[]"', '{}', 'true', '"true"', 'null',
    '"null"', '""', None, '"\\u2028"', '"tab\\t"', '"\\u0000"', '1e3', '"1000"', '12345678901234567890123', '" {"',
]
# PostHog's string read of a property (§5.3), the reference the compiled SQL must agree with.
POSTHOG_READ = "replaceRegexpAll(nullIf(nullIf(JSONExtractRaw(properties, {k:String}), ''), 'null'), '^\"|\"$', '')"


async def _insert_raw(engine, props: list[str]) -> None:
    rows = []
    for i, text in enumerate(props):
        rows.append([str(uuid.uuid4()), "e", text, f"2020-01-{10 + i % 3}T10:00:00+00:00", engine.env_id,
                     f"p{i % 7}", person_uuid(f"p{i % 7}", engine.env_id), "{}"])
    await engine.ch.insert("events", ["uuid", "event", "properties", "timestamp", "team_id", "distinct_id",
                                      "person_id", "person_properties"], rows)


@pytest.fixture
async def raw_data(engine):
    props = []
    for i, v in enumerate(RAW_VALUES * 3):
        w = RAW_VALUES[(i * 7) % len(RAW_VALUES)]
        fields = [f'"n": {i % 11}', f'"$session_id": "s{i % 5}"'] + (
            [f'"v": {v}'] if v is not None else []) + ([f'"w": {w}'] if w is not None else [])
        props.append("{" + ", ".join(fields) + "}")
    await _insert_raw(engine, props)
    return engine


class TestRawReads:
    """The deferred breakdown reads (JSONExtractString, JSONExtractRaw only where needed, the value
    rebuilt after grouping) give PostHog's string read for every spelling and under every math."""

    REFERENCE = {
        "total": "toFloat64(count())",
        "dau": "toFloat64(uniqExact(person_id))",
        "unique_session": "toFloat64(uniqExact(JSONExtractString(properties, '$session_id')))",
        "sum": "toFloat64(sum(JSONExtractFloat(properties, 'n')))",
        "avg": "avg(JSONExtractFloat(properties, 'n'))",
        "min": "toFloat64(min(JSONExtractFloat(properties, 'n')))",
        "max": "toFloat64(max(JSONExtractFloat(properties, 'n')))",
    }

    async def _reference(self, engine, keys: list[str], agg: str) -> dict:
        reads = [POSTHOG_READ.replace("{k:String}", f"{{k{i}:String}}") for i in range(len(keys))]
        values = [f"ifNull(nullIf({read}, ''), {{null:String}})" for read in reads]
        bv = values[0] if len(keys) == 1 else f"[{', '.join(values)}]"
        params = {"team": engine.env_id, "null": NULL, **{f"k{i}": k for i, k in enumerate(keys)}}
        result = await engine.ch.execute(
            f"SELECT {bv} AS bv, {agg} FROM events WHERE team_id = {{team:Int64}} AND event = 'e' GROUP BY bv", params)
        return {(tuple(b) if isinstance(b, list) else b): round(v, 9) for b, v in result.rows}

    @pytest.mark.parametrize("math", sorted(REFERENCE))
    async def test_every_spelling_every_math(self, raw_data, math):
        series = events("e", math=math, **({"math_property": "n"} if math in ("sum", "avg", "min", "max") else {}))
        for keys in (["v"], ["v", "w"]):
            bf = ({"breakdown": "v", "breakdown_limit": 1000} if len(keys) == 1 else
                  {"breakdowns": [{"property": k} for k in keys], "breakdown_limit": 1000})
            result, has_more = await rows(raw_data, bf, series=[series], trendsFilter={"display": "ActionsPie"})
            ours = {(tuple(r["breakdown_value"]) if isinstance(r["breakdown_value"], list) else r["breakdown_value"]):
                    round(float(r["aggregated_value"]), 9) for r in result}
            assert ours == await self._reference(raw_data, keys, self.REFERENCE[math]) and not has_more
            assert "é" in ours or any("é" in k for k in ours if isinstance(k, tuple))

    async def test_time_series_sums_spellings(self, raw_data):
        result, _ = await rows(raw_data, {"breakdown": "v", "breakdown_limit": 1000})
        by_value = {r["breakdown_value"]: r["count"] for r in result}
        assert by_value["5"] == 9 and by_value["a/b"] == 6 and by_value["é"] == 6 and by_value['a\\"b'] == 3
        assert by_value['{"x":"y"}'] == 3 and by_value['{\\"x\\":\\"y\\"}'] == 3 and by_value["true"] == 6


async def test_rebuilt_raw_text_matches_jsonextractraw_for_every_character(ch_executor):
    """`raw_from_parts(raw_parts(…))` equals JSONExtractRaw's text for every Unicode scalar value,
    written as a \\u escape and as itself, alone and inside a string (guards chDB upgrades)."""
    from app.query_engine import ir
    from app.query_engine.printer import Printer
    from app.query_engine.properties import raw_from_parts, raw_parts, string_from_raw

    raw = ir.call("JSONExtractRaw", ir.Column("d"), ir.string("k"))
    text, rest = raw_parts(raw)
    printer = Printer()
    ours = printer.visit(string_from_raw(raw_from_parts(text, rest)))
    truth = printer.visit(string_from_raw(raw))
    sql = f"""
    SELECT countIf(NOT ({ours} IS NOT DISTINCT FROM {truth})), count() FROM (
      SELECT multiIf(form = 0, concat('{{"k":"a', esc, 'b"}}'), form = 1, concat('{{"k":"', esc, '"}}'),
                     form = 2, concat('{{"k":"a', u, 'b"}}'), concat('{{"k":"', u, '"}}')) AS d
      FROM (SELECT toUInt32(number) AS cp,
              if(cp < 65536, concat('\\\\u', leftPad(hex(toUInt16(cp)), 4, '0')),
                 concat('\\\\u', hex(toUInt16(0xD800 + intDiv(cp - 65536, 1024))),
                        '\\\\u', hex(toUInt16(0xDC00 + ((cp - 65536) % 1024))))) AS esc,
              JSONExtractString(concat('{{"k":"', esc, '"}}'), 'k') AS u,
              arrayJoin(if(cp < 32 OR cp = 34 OR cp = 92, [0, 1], [0, 1, 2, 3])) AS form
            FROM numbers(1114112) WHERE NOT (cp BETWEEN 0xD800 AND 0xDFFF) AND (cp < 65536 OR cp % 61 = 0)))
    """
    bad, total = (await ch_executor.execute(sql, printer.params)).rows[0]
    assert total > 250_000 and bad == 0

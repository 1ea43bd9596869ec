"""Stats and values SQL: values only ever travel as server-side parameters."""

from __future__ import annotations

from datetime import datetime, timezone

from starlette.datastructures import QueryParams

from app.models import Environment
from app.query_engine.scope import Scope
from app.services.element_stats import build_stats_sql, parse_params
from app.services.elements import re2_escape, values_patterns

HOSTILE = "x'); DROP TABLE events; --\\{p0:String}`"


def _env(**kw) -> Environment:
    return Environment(id=42, timezone="Europe/Berlin", test_account_filters=[], **kw)


class TestStatsSql:
    def test_hostile_filter_values_are_parameters(self):
        import json

        query = QueryParams({"properties": json.dumps([{"key": HOSTILE, "value": HOSTILE},
                                                        {"key": "text", "value": HOSTILE, "type": "element"}]),
                             "include": "$rageclick", "limit": "10", "offset": "5", "sampling_factor": "0.25"})
        params = parse_params(query, _env())
        scope = Scope(team_id=42, timezone="Europe/Berlin", now=datetime(2026, 11, 20, tzinfo=timezone.utc))
        sql, values = build_stats_sql(params, scope, [])
        assert "DROP" not in sql and HOSTILE in values.values()
        assert "LIMIT 11\nOFFSET 5" in sql and "SAMPLE 1/4" in sql
        assert values["p0"] == 42 and values["p1"] == ["$rageclick"]
        assert "GROUP BY `e`.`elements_chain`, `e`.`event`" in sql

    def test_day_bounds_in_the_environment_zone(self):
        from app import clock

        clock.freeze("2026-11-20T23:30:00Z")  # already the 21st in Berlin
        try:
            params = parse_params(QueryParams({"date_from": "-1d"}), _env())
        finally:
            clock.freeze(None)
        assert params.date_from.isoformat() == "2026-11-20T00:00:00+01:00"
        assert params.date_to.isoformat() == "2026-11-21T23:59:59.999999+01:00"


class TestValuesPatterns:
    def test_escape_is_literal_for_re2(self):
        assert re2_escape("a.b*c(d)[e]{f}|g^h$i+j?k\\") == "a\\.b\\*c\\(d\\)\\[e\\]\\{f\\}\\|g\\^h\\$i\\+j\\?k\\\\"
        assert re2_escape("plain - text #1 ✓") == "plain - text #1 ✓"

    def test_patterns(self):
        select_re, filter_re = values_patterns("tag_name", "bu")
        assert select_re == r"^([-_a-zA-Z0-9]*?)[\.|:]" and filter_re == r"^([-_a-zA-Z0-9]*?bu[-_a-zA-Z0-9]*?)[\.|:]"
        select_re, filter_re = values_patterns("href", None)
        assert select_re == filter_re == '[:|"]href="(.*?[^\\\\])"'


class TestElementsCache:
    def test_bounded_by_size_least_recent_first(self):
        from app.services.element_stats import _ElementsCache

        cache = _ElementsCache(max_bytes=100)
        cache.put(("a" * 10, "", None), b"x" * 30)
        cache.put(("b" * 10, "", None), b"x" * 30)
        assert cache.get(("a" * 10, "", None)) == b"x" * 30  # now the most recent
        cache.put(("c" * 10, "", None), b"x" * 30)
        assert cache.get(("b" * 10, "", None)) is None and cache.get(("a" * 10, "", None)) is not None
        assert cache.size <= 100
        assert cache.get(("a" * 10, "data-*", None)) is None  # shaping parameters are part of the key

"""Encoding of server-side parameter values and parsing of JSONCompact results (no server)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from app.query_engine.executor.base import (
    ClickHouseError,
    encode_param,
    encode_params,
    encode_rows,
    parse_json_compact,
    render_settings_clause,
    settings_dict,
    ExecuteSettings,
)


class TestEncodeParam:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            ("plain", "plain"),
            ("tab\tnl\ncr\rnul\x00", "tab\\tnl\\ncr\\rnul\\0"),
            ("back\\slash", "back\\\\slash"),
            ("\\N", "\\\\N"),
            ("it's", "it's"),  # quotes need no escaping in the escaped format
            (None, "\\N"),
            (True, "1"),
            (12, "12"),
            (-0.5, "-0.5"),
            (Decimal("1.10"), "1.10"),
            (uuid.UUID(int=255), "00000000-0000-0000-0000-0000000000ff"),
            (date(2024, 2, 29), "2024-02-29"),
            (datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))), "2024-01-01 10:00:00.000000"),
            (["a'b", None, "c\\d"], "['a\\'b', NULL, 'c\\\\d']"),
            ([1, 2], "[1, 2]"),
            (("x", 1), "('x', 1)"),
            ({"k": ["v"]}, "{'k': ['v']}"),
        ],
    )
    def test_encoding(self, value, text):
        assert encode_param(value) == text

    def test_bad_name_or_type(self):
        with pytest.raises(ValueError):
            encode_params({"p0; x": 1})
        with pytest.raises(TypeError):
            encode_params({"p0": object()})


class TestSettings:
    def test_clause(self):
        values = settings_dict(ExecuteSettings(max_execution_time=5, extra={"max_threads": 2, "join_algorithm": "hash"}))
        assert render_settings_clause(values) == "SETTINGS max_execution_time = 5, max_threads = 2, join_algorithm = 'hash'"
        assert render_settings_clause({}) == ""


class TestParse:
    def test_empty_body(self):
        result = parse_json_compact(b"")
        assert result.rows == [] and result.columns == []

    def test_garbage_is_an_error(self):
        with pytest.raises(ClickHouseError):
            parse_json_compact(b'{"meta": []}{"meta": []}')


class TestEncodeRows:
    def test_big_ints_fall_back_to_stdlib(self):
        assert encode_rows([(2**100, "x")]) == b'[' + str(2**100).encode() + b',"x"]'

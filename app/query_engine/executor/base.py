"""The ClickHouse executor protocol shared by the embedded (chDB) and HTTP backends.

Both receive `(sql, params)` where `sql` carries server-side `{name:Type}` placeholders and
`params` maps each name to its value; nothing from a request is ever formatted into `sql`.

Results come back in ClickHouse's `JSONCompact` format on both backends and are parsed by
`parse_json_compact`: integers are Python ints (also 64-bit and wider), floats are floats,
and Date/DateTime/DateTime64/UUID values are strings exactly as ClickHouse prints them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Protocol, Sequence

import orjson


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    elapsed: float = 0.0
    rows_read: int = 0


@dataclass(frozen=True)
class QueryProgress:
    query_id: str
    rows_read: int
    bytes_read: int
    elapsed: float
    total_rows_approx: int = 0


@dataclass
class ExecuteSettings:
    max_execution_time: int | None = None
    max_memory_usage: int | None = None
    max_result_rows: int | None = None
    extra: dict[str, int | str] = field(default_factory=dict)


class ClickHouseError(Exception):
    """A query failed inside ClickHouse (bad SQL, type error, …)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ClickHouseTimeout(ClickHouseError):
    """`max_execution_time` was exceeded."""


class ClickHouseCancelled(ClickHouseError):
    """The query was killed by `cancel()`."""


class ClickHouseUnavailable(ClickHouseError):
    """The server could not be reached."""


class ClickHouseExecutor(Protocol):
    database: str

    async def execute(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        *,
        query_id: str | None = None,
        settings: ExecuteSettings | None = None,
    ) -> QueryResult: ...

    async def command(
        self, sql: str, params: dict[str, Any] | None = None, *, use_database: bool = True
    ) -> None:
        """Run DDL or other statements that return no rows.

        `use_database=False` runs it outside `database` (needed for the `CREATE DATABASE` that
        creates it: a ClickHouse server rejects requests naming a missing default database).
        """

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Batched insert; `table` and `columns` come from the fixed catalog."""

    async def append(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A durable insert whose rows may reach `table` up to about a second later (the embedded
        engine stages small ones, see `staging`); reads through this executor see them at once."""

    async def recover(self) -> None:
        """Finish appends an earlier process left unfinished: once, at startup, by the data's owner."""

    async def cancel(self, query_id: str) -> bool:
        """Kill a running query; True when one was found."""

    async def progress(self, query_id: str) -> QueryProgress | None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Helpers shared by both backends. They live here so the chDB and HTTP executors encode
# parameters, validate settings and parse results identically.
# ---------------------------------------------------------------------------------------------

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUERY_ID_RE = re.compile(r"^[A-Za-z0-9_\-:.]{1,128}$")
# A string setting value is rendered into a SETTINGS clause by the chDB executor, so only
# plain tokens are allowed (e.g. 'throw', 'best_effort').
_SETTING_STR_RE = re.compile(r"^[A-Za-z0-9_.\-]{0,64}$")
_CODE_RE = re.compile(r"Code:\s*(\d+)")

TIMEOUT_EXCEEDED = 159
QUERY_WAS_CANCELLED = 394


def quote_identifier(name: str) -> str:
    """Backquote a database/table/column/cluster name after checking it is a plain identifier."""
    if not isinstance(name, str) or not IDENTIFIER_RE.match(name):
        raise ValueError(f"invalid ClickHouse identifier: {name!r}")
    return f"`{name}`"


def check_query_id(query_id: str) -> str:
    # The id ends up inside a SQL comment (chDB) or a URL parameter (HTTP): a strict charset
    # keeps `*/` and friends out of it.
    if not isinstance(query_id, str) or not QUERY_ID_RE.match(query_id):
        raise ValueError(f"invalid query_id: {query_id!r}")
    return query_id


def settings_dict(settings: ExecuteSettings | None) -> dict[str, int | str]:
    """Validated per-query settings as {name: value}; raises ValueError on anything odd."""
    if settings is None:
        return {}
    out: dict[str, int | str] = {}
    for name, value in (
        ("max_execution_time", settings.max_execution_time),
        ("max_memory_usage", settings.max_memory_usage),
        ("max_result_rows", settings.max_result_rows),
    ):
        if value is not None:
            out[name] = _check_int_setting(name, value)
    for name, value in settings.extra.items():
        if not IDENTIFIER_RE.match(name):
            raise ValueError(f"invalid setting name: {name!r}")
        if isinstance(value, str):
            if not _SETTING_STR_RE.match(value):
                raise ValueError(f"invalid value for setting {name}: {value!r}")
            out[name] = value
        else:
            out[name] = _check_int_setting(name, value)
    return out


def _check_int_setting(name: str, value: Any) -> int:
    # bool is an int subclass; True as a memory limit is a bug, not 1 byte.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"setting {name} must be a non-negative int, got {value!r}")
    return value


def render_settings_clause(settings: dict[str, int | str]) -> str:
    """`SETTINGS a = 1, b = 'x'` from an already validated dict (see `settings_dict`)."""
    parts = []
    for name, value in settings.items():
        rendered = f"'{value}'" if isinstance(value, str) else str(int(value))
        parts.append(f"{name} = {rendered}")
    return "SETTINGS " + ", ".join(parts) if parts else ""


# --- server-side parameter values -------------------------------------------------------------
# ClickHouse parses a scalar `{name:Type}` value in the *escaped* (TSV) text format, so
# backslashes, tabs and newlines must be escaped, and `\N` means NULL. Composite values
# (Array, Tuple, Map) are parsed as *quoted* literals instead: `['a\'b', NULL]`.
# Measured on chDB 26.9 (the server uses the same code path).

_ESCAPED = str.maketrans(
    {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"}
)
_QUOTED = str.maketrans(
    {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"}
)


def encode_param(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return _literal(value)
    return _scalar(value).translate(_ESCAPED)


def encode_params(params: dict[str, Any] | None) -> dict[str, str]:
    if not params:
        return {}
    out = {}
    for name, value in params.items():
        if not IDENTIFIER_RE.match(name):
            raise ValueError(f"invalid parameter name: {name!r}")
        out[name] = encode_param(value)
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # nan/inf parse as Float64
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(f"unsupported parameter type: {type(value).__name__}")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, (list, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(_literal(v) for v in items) + "]"
    text = _scalar(value)
    if isinstance(value, (bool, int, float)):
        return text
    return "'" + text.translate(_QUOTED) + "'"


# --- results ------------------------------------------------------------------------------------

_WIDE_INT_RE = re.compile(r"Int(128|256)\b")


def parse_json_compact(body: bytes) -> QueryResult:
    """Parse a `JSONCompact` body into a QueryResult.

    Types: (U)Int* → int (64-bit integers are not quoted, we turn that setting off), Float →
    float (nan/inf arrive as None), Decimal → float, Bool → bool, Date/DateTime/DateTime64/UUID
    → str exactly as ClickHouse prints them (in the column's time zone), Array → list, Tuple →
    list, Map → dict. orjson parses the body; it silently turns integers beyond 64 bits into
    floats, so results with (U)Int128/256 columns are re-parsed with the stdlib json.
    """
    if not body.strip():
        return QueryResult(columns=[], types=[], rows=[])
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # A body that is not one JSON document means the engine mixed something into it.
        raise ClickHouseError(f"unparseable result: {body[:200]!r}") from exc
    meta = doc.get("meta", [])
    types = [m["type"] for m in meta]
    if any(_WIDE_INT_RE.search(t) for t in types):
        doc = json.loads(body)
    stats = doc.get("statistics") or {}
    return QueryResult(
        columns=[m["name"] for m in meta],
        types=types,
        rows=[tuple(row) for row in doc.get("data", [])],
        elapsed=float(stats.get("elapsed", 0.0)),
        rows_read=int(stats.get("rows_read", 0)),
    )


def error_from_message(message: str, code: int | None = None) -> ClickHouseError:
    """Map a ClickHouse exception text (`Code: 159. DB::Exception: …`) to our error classes."""
    if code is None:
        match = _CODE_RE.search(message)
        code = int(match.group(1)) if match else None
    message = message.strip()
    if code == TIMEOUT_EXCEEDED:
        return ClickHouseTimeout(message, code)
    if code == QUERY_WAS_CANCELLED:
        return ClickHouseCancelled(message, code)
    return ClickHouseError(message, code)


# --- inserts --------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot insert value of type {type(value).__name__}")


# Settings every JSONCompactEachRow insert runs with (see `encode_rows`).
INSERT_SETTINGS = "date_time_input_format = 'best_effort', input_format_json_read_objects_as_strings = 1"


def encode_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows as a `JSONCompactEachRow` body (`[..],[..]`, which ClickHouse accepts).

    JSON escaping makes any string content safe (quotes, backslashes, newlines, NUL, unicode).
    Datetimes become ISO 8601 text, so inserts must run with
    `date_time_input_format = 'best_effort'`; naive datetimes are read as the column's zone.
    orjson encodes 100k event rows in a few tens of milliseconds; integers beyond 64 bits fall
    back to the stdlib encoder.

    A value may be an `orjson.Fragment` holding a JSON object's text: it is embedded unescaped,
    and a String column stores the object's text exactly as sent
    (`input_format_json_read_objects_as_strings`, see INSERT_SETTINGS). The stdlib fallback cannot
    embed one (TypeError): a fragment's own big integers are the caller's to handle.
    """
    if not isinstance(rows, list):
        rows = list(rows)
    try:
        return orjson.dumps(rows, default=_json_default)[1:-1]
    except TypeError:
        return json.dumps(rows, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()[1:-1]

"""The catalog: every table and column name the engine may put into SQL, taken from the ClickHouse
DDL (app/clickhouse/ddl.py) and checked when this module loads."""

from __future__ import annotations

import re

from app.clickhouse.ddl import ALL_TABLES

# Column names of the DDL include `$group_0`, `$session_id`, …: the printer backquotes them.
NAME_RE = re.compile(r"^\$?[A-Za-z_][A-Za-z0-9_]*$")

COLUMNS: dict[str, frozenset[str]] = {t.name: frozenset(c.name for c in t.columns) for t in ALL_TABLES}

for _table, _columns in COLUMNS.items():
    for _name in (_table, *_columns):
        if not NAME_RE.match(_name):
            raise RuntimeError(f"catalog name {_name!r} is not a plain identifier")

# event_metadata filters/breakdowns may name these raw events columns (spec §5.6).
EVENT_METADATA_COLUMNS = frozenset(
    {"event", "distinct_id", "timestamp", "person_id", "elements_chain", "created_at", "$session_id", "$window_id"}
    | {f"$group_{i}" for i in range(5)}
) & COLUMNS["events"]


def has_column(table: str, name: str) -> bool:
    return name in COLUMNS.get(table, ())

"""The HogQL catalog: the tables a HogQL query may name, the fields each exposes, and the
team-filtered SQL each one reads. Every table here carries the caller's team filter; there is no
way to name a ClickHouse table that is not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from app.query_engine import ir
from app.query_engine.properties import string_from_raw

EVENT_COLUMNS = ("uuid", "event", "distinct_id", "elements_chain", "person_id", "$session_id", "$window_id",
                 *(f"$group_{i}" for i in range(5)))
EVENT_TIMESTAMPS = ("timestamp", "created_at")
# Raw columns of the events SELECT used when events is joined (it then becomes a subquery).
EVENT_RAW = (*EVENT_COLUMNS, *EVENT_TIMESTAMPS, "properties", "person_properties", "person_created_at")

TABLES = ("events", "persons", "person_distinct_ids", "groups", "sessions")


@dataclass
class EventsHooks:
    """How an events source reads its person: straight columns in a HogQL query, the trends scope's
    persons-on-events mode when a HogQL expression sits inside a trends series."""
    col: Callable[[str], ir.Expr]
    person_properties: Callable[[], ir.Expr]
    person_id: Callable[[], ir.Expr]


def team_eq(team_id: int) -> ir.Expr:
    return ir.eq(ir.Column("team_id"), ir.Param(int(team_id), "Int64"))


def json_path(source: ir.Expr, keys: list, numeric: bool) -> ir.Expr:
    """Read a (nested) JSON property as PostHog does: a nullable string, or a number when the
    property definition says Numeric."""
    args = [ir.Param(k, "Int64") if isinstance(k, int) else ir.string(str(k)) for k in keys]
    value = string_from_raw(ir.call("JSONExtractRaw", source, *args))
    return ir.call("accurateCastOrNull", value, ir.string("Float64")) if numeric else value


def events_select(team_id: int, where: ir.Expr | None = None) -> ir.Select:
    """events as a JOIN source: the raw columns of the caller's team only."""
    return ir.Select(columns=tuple(ir.Column(c) for c in EVENT_RAW), from_=ir.Table("events"),
                     where=ir.and_(team_eq(team_id), where))


def _latest(team_id: int, table: str, key: tuple[str, ...], fields: dict[str, ir.Expr], version: str,
            deleted: bool = True) -> ir.Select:
    return ir.Select(
        columns=(*(ir.Column(k) if k == n else ir.Alias(ir.Column(k), n) for k, n in zip(key, key)),
                 *(ir.Alias(ir.call("argMax", e, ir.Column(version)), name) for name, e in fields.items())),
        from_=ir.Table(table), where=team_eq(team_id), group_by=tuple(ir.Column(k) for k in key),
        having=ir.eq(ir.call("argMax", ir.Column("is_deleted"), ir.Column(version)), ir.Const(0)) if deleted else None,
    )


def source_select(name: str, team_id: int) -> ir.Select:
    """A team-filtered SELECT for a non-events table (latest version of each row)."""
    if name == "persons":
        return _latest(team_id, "person", ("id",), {
            "properties": ir.Column("properties"), "created_at": ir.Column("created_at"),
            "is_identified": ir.Column("is_identified")}, "version")
    if name == "person_distinct_ids":
        return _latest(team_id, "person_distinct_id2", ("distinct_id",), {"person_id": ir.Column("person_id")},
                       "version")
    if name == "groups":
        sub = _latest(team_id, "groups", ("group_type_index", "group_key"), {
            "properties": ir.Column("group_properties"), "created_at": ir.Column("created_at")}, "updated_at",
            deleted=False)
        return ir.Select(columns=(ir.Alias(ir.Column("group_type_index"), "index"),
                                  ir.Alias(ir.Column("group_key"), "key"), ir.Column("properties"),
                                  ir.Column("created_at")), from_=ir.Subquery(sub))
    if name == "sessions":  # derived from events, as INGESTION.md §10 describes
        ts, sid = ir.Column("timestamp"), ir.Column("$session_id")
        url = ir.call("JSONExtractString", ir.Column("properties"), ir.string("$current_url"))
        return ir.Select(
            columns=(
                ir.Alias(sid, "session_id"), ir.Alias(ir.call("min", ts), "start_timestamp"),
                ir.Alias(ir.call("max", ts), "end_timestamp"),
                ir.Alias(ir.call("dateDiff", ir.string("second"), ir.call("min", ts), ir.call("max", ts)), "duration"),
                ir.Alias(ir.call("argMin", url, ts), "entry_url"), ir.Alias(ir.call("argMax", url, ts), "exit_url"),
                ir.Alias(ir.call("countIf", ir.eq(ir.Column("event"), ir.string("$pageview"))), "pageview_count"),
                ir.Alias(ir.call("count"), "event_count"), ir.Alias(ir.call("any", ir.Column("distinct_id")),
                                                                     "distinct_id"),
            ),
            from_=ir.Table("events"), where=ir.and_(team_eq(team_id), ir.call("notEmpty", sid)),
            group_by=(ir.Column("session_id"),),
        )
    raise AssertionError(name)


# Fields of the non-events tables: HogQL name → (column, is a timestamp to convert to the project zone).
FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "persons": {"id": ("id", False), "created_at": ("created_at", True), "is_identified": ("is_identified", False)},
    "person_distinct_ids": {"distinct_id": ("distinct_id", False), "person_id": ("person_id", False)},
    "groups": {"index": ("index", False), "key": ("key", False), "created_at": ("created_at", True)},
    "sessions": {
        "session_id": ("session_id", False), "$session_id": ("session_id", False),
        "$start_timestamp": ("start_timestamp", True), "$end_timestamp": ("end_timestamp", True),
        "duration": ("duration", False), "$session_duration": ("duration", False),
        "$entry_current_url": ("entry_url", False), "$exit_current_url": ("exit_url", False),
        "$pageview_count": ("pageview_count", False), "event_count": ("event_count", False),
        "distinct_id": ("distinct_id", False),
    },
}
HAS_PROPERTIES = {"persons", "groups"}

# What `SELECT *` expands to, per table.
STAR_FIELDS: dict[str, list[str]] = {
    "events": ["uuid", "event", "properties", "timestamp", "distinct_id", "elements_chain", "created_at",
               "$session_id", "person_id"],
    "persons": ["id", "properties", "created_at", "is_identified"],
    "person_distinct_ids": ["distinct_id", "person_id"],
    "groups": ["index", "key", "properties", "created_at"],
    "sessions": ["session_id", "$start_timestamp", "$end_timestamp", "duration", "$entry_current_url",
                 "$exit_current_url", "$pageview_count"],
}

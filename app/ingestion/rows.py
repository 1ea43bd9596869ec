"""The one place an `events` row is built (capture and demo data share it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from app.ingestion.events import Event
from app.ingestion.persons import EventPerson

EVENT_COLUMNS = (
    "uuid", "event", "properties", "timestamp", "team_id", "distinct_id", "elements_chain", "created_at",
    "person_id", "person_created_at", "person_properties",
    "group0_properties", "group1_properties", "group2_properties", "group3_properties", "group4_properties",
    "group0_created_at", "group1_created_at", "group2_created_at", "group3_created_at", "group4_created_at",
    "person_mode", "historical_migration",
)
_NO_GROUP = "1970-01-01 00:00:00"
_NO_GROUPS = ("", "", "", "", "", _NO_GROUP, _NO_GROUP, _NO_GROUP, _NO_GROUP, _NO_GROUP)


def properties_json(properties: dict[str, Any]) -> str:
    try:
        return orjson.dumps(properties).decode()
    except TypeError:  # integers beyond 64 bits (parsed by the stdlib fallback)
        import json

        return json.dumps(properties, ensure_ascii=False, separators=(",", ":"), default=str)


def properties_value(properties: dict[str, Any]) -> orjson.Fragment:
    """The `properties` column's value in a row: the JSON text, embedded as is by `encode_rows`
    (serialising it to a string and escaping that string again cost ~1 µs per event)."""
    try:
        return orjson.Fragment(orjson.dumps(properties))
    except TypeError:  # integers beyond 64 bits
        return orjson.Fragment(properties_json(properties))


def group_columns(person: EventPerson) -> tuple[Any, ...]:
    """groupN_properties then groupN_created_at: each named group's state at ingestion time (§9.6)."""
    if person.groups is None:
        return _NO_GROUPS
    props = tuple(g.properties_json() if g is not None else "" for g in person.groups)
    created = tuple(g.created_at if g is not None else _NO_GROUP for g in person.groups)
    return props + created


def event_row(team_id: int, ev: Event, person: EventPerson, now: datetime, historical: bool) -> tuple[Any, ...]:
    return (
        ev.uuid, ev.event, properties_value(ev.properties), ev.timestamp, team_id, ev.distinct_id,
        ev.elements_chain, now, person.person_id, person.created_at, person.properties_json,
        *group_columns(person),
        person.mode, historical,
    )

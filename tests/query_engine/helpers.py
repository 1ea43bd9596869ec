"""Test data for the query engine: events, persons and groups inserted straight into ClickHouse
under the test's own team_id (tables are shared by the whole session and never truncated)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from app.query_engine.executor.base import ClickHouseExecutor

_NS = uuid.UUID("6f1c1d3e-7a43-4b4e-9d63-0a9b3c1f2e10")


def person_uuid(distinct_id: str, team_id: int) -> str:
    return str(uuid.uuid5(_NS, f"{team_id}:{distinct_id}"))


def ts(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


async def insert_events(ch: ClickHouseExecutor, team_id: int, events: list[dict[str, Any]]) -> None:
    """Each event: event, distinct_id, timestamp (ISO, UTC unless an offset is given), and optional
    properties, person_properties, person (distinct id of the person; default: distinct_id),
    elements_chain."""
    rows = []
    for e in events:
        person = e.get("person", e["distinct_id"])
        rows.append([
            str(uuid.uuid4()), e["event"], json.dumps(e.get("properties", {})), ts(e["timestamp"]).isoformat(),
            team_id, e["distinct_id"], e.get("elements_chain", ""), person_uuid(person, team_id),
            json.dumps(e.get("person_properties", {})),
        ])
    await ch.insert(
        "events",
        ["uuid", "event", "properties", "timestamp", "team_id", "distinct_id", "elements_chain", "person_id",
         "person_properties"],
        rows,
    )


async def insert_person(ch: ClickHouseExecutor, team_id: int, distinct_ids: list[str], properties: dict[str, Any],
                        *, version: int = 0) -> str:
    pid = person_uuid(distinct_ids[0], team_id)
    await ch.insert("person", ["id", "created_at", "team_id", "properties", "is_identified", "version"],
                    [[pid, "2020-01-01T00:00:00", team_id, json.dumps(properties), 1, version]])
    await ch.insert("person_distinct_id2", ["team_id", "distinct_id", "person_id", "version"],
                    [[team_id, d, pid, 0] for d in distinct_ids])
    return pid


async def insert_override(ch: ClickHouseExecutor, team_id: int, distinct_id: str, person_distinct_id: str) -> None:
    await ch.insert("person_distinct_id_overrides", ["team_id", "distinct_id", "person_id", "version"],
                    [[team_id, distinct_id, person_uuid(person_distinct_id, team_id), 1]])


async def insert_group(ch: ClickHouseExecutor, team_id: int, index: int, key: str, properties: dict[str, Any]) -> None:
    await ch.insert("groups", ["group_type_index", "group_key", "created_at", "team_id", "group_properties"],
                    [[index, key, "2020-01-01T00:00:00", team_id, json.dumps(properties)]])

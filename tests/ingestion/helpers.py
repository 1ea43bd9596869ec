"""Row assertions read ClickHouse through the executor, always filtered to the test's team."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

import orjson


async def events(ch, team_id: int, *, columns: str = "event, distinct_id, properties") -> list[tuple[Any, ...]]:
    result = await ch.execute(
        f"SELECT {columns} FROM events WHERE team_id = {{team:Int64}} ORDER BY timestamp, event, uuid",
        {"team": team_id},
    )
    return result.rows


async def count(ch, team_id: int) -> int:
    result = await ch.execute("SELECT count() FROM events WHERE team_id = {team:Int64}", {"team": team_id})
    return int(result.rows[0][0])


async def person_of(ch, team_id: int, distinct_id: str) -> str | None:
    """The current person of a distinct id, read the way queries read it (argMax by version)."""
    result = await ch.execute(
        "SELECT argMax(person_id, version) FROM person_distinct_id2 WHERE team_id = {team:Int64}"
        " AND distinct_id = {did:String} GROUP BY distinct_id HAVING argMax(is_deleted, version) = 0",
        {"team": team_id, "did": distinct_id},
    )
    return str(result.rows[0][0]) if result.rows else None


async def unique_persons(ch, team_id: int) -> int:
    """Unique users over all events, persons-on-events with overrides (§9.8)."""
    result = await ch.execute(
        """
        SELECT uniqExact(if(o.person_id != toUUID('00000000-0000-0000-0000-000000000000'), o.person_id, e.person_id))
        FROM events AS e
        LEFT JOIN (
            SELECT distinct_id, argMax(person_id, version) AS person_id FROM person_distinct_id_overrides
            WHERE team_id = {team:Int64} GROUP BY distinct_id
        ) AS o ON o.distinct_id = e.distinct_id
        WHERE e.team_id = {team:Int64}
        """,
        {"team": team_id},
    )
    return int(result.rows[0][0])


def event(name: str = "test", distinct_id: str = "user-1", **extra: Any) -> dict[str, Any]:
    return {"event": name, "distinct_id": distinct_id, "uuid": str(uuid.uuid4()), "properties": {}, **extra}


def gz(doc: Any) -> bytes:
    return gzip.compress(orjson.dumps(doc))

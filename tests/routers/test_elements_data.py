"""Shared data for the Elements API tests (no tests here): direct event inserts, sample chains."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import orjson

from app.clickhouse.ddl import EVENTS_COLUMNS

NO_GROUP = "1970-01-01 00:00:00"
NIL = "00000000-0000-0000-0000-000000000000"

SIGNUP = ('a.btn.btn-primary:attr__class="btn btn-primary"attr__href="#signup"attr__id="signup"attr_id="signup"'
          'href="#signup"nth-child="1"nth-of-type="1"text="Sign up";div.hero:attr__class="hero"nth-child="1"'
          'nth-of-type="1";body:nth-child="2"nth-of-type="1"')
BUY = ('button.buy.hover:bg-red:attr__class="hover:bg-red buy"attr__data-attr="buy-button"attr__type="button"'
       'nth-child="1"nth-of-type="1"text="Buy \\"now\\"";form.form-signin:attr__class="form-signin"nth-child="2"'
       'nth-of-type="1";body:nth-child="2"nth-of-type="1"')
LOGIN = 'a:attr__href="/login"href="/login"nth-child="1"nth-of-type="1"text="Log in";body:nth-child="2"nth-of-type="1"'


def row(team_id: int, event: str, chain: str, ts: datetime, *, properties: dict[str, Any] | None = None,
        distinct_id: str = "user-1", person_properties: dict[str, Any] | None = None,
        group0: str | None = None) -> tuple[Any, ...]:
    props = dict(properties or {})
    if group0 is not None:
        props["$group_0"] = group0
    values = {
        "uuid": str(uuid.uuid4()), "event": event, "properties": orjson.dumps(props).decode(),
        "timestamp": ts.astimezone(timezone.utc).replace(tzinfo=None), "team_id": team_id,
        "distinct_id": distinct_id, "elements_chain": chain, "created_at": ts.astimezone(timezone.utc).replace(tzinfo=None),
        "person_id": NIL, "person_created_at": NO_GROUP,
        "person_properties": orjson.dumps(person_properties or {}).decode(),
        **{f"group{i}_properties": "" for i in range(5)}, **{f"group{i}_created_at": NO_GROUP for i in range(5)},
        "person_mode": "full", "historical_migration": False, "inserted_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }
    return tuple(values[c] for c in EVENTS_COLUMNS)


async def insert(ch, rows: list[tuple[Any, ...]]) -> None:
    await ch.insert("events", EVENTS_COLUMNS, rows)

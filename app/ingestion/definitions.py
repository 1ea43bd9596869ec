"""Event and property definitions seen at ingestion, with PostHog's type inference.

The type of a property is decided the first time it is seen in an environment and never changed
by ingestion afterwards (users may PATCH it). An in-process set of names already written keeps
the hot path off PostgreSQL: only names new to this process reach the one batched
`INSERT … ON CONFLICT DO NOTHING` per table per batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.ingestion.events import Event
from app.models.definitions import (
    EVENT_PROPERTY, GROUP_PROPERTY, PERSON_PROPERTY, EventDefinition, PropertyDefinition,
)

MAX_NAME = 200
_SKIP_EVENT_PROPS = {"$set", "$set_once", "$unset", "$groups", "$elements", "$elements_chain", "$group_set",
                     "$group_0", "$group_1", "$group_2", "$group_3", "$group_4"}
_SKIP_EVENTS = {"$$plugin_metrics"}
_DATETIME_NAME_HINTS = ("time", "timestamp", "date", "_at", "-at", "createdat", "updatedat")
# A date (`yyyy-mm-dd`, `yyyy/mm/dd`, `dd-mm-yyyy`, `dd/mm/yyyy`), optionally followed by a time with
# seconds and anything after it: PostHog's own "looks like a date" test for property values.
_DATE_PREFIX = re.compile(
    r"^(\d{4}[/-][0-2]\d[/-][0-3]\d|[0-2]\d[/-][0-3]\d[/-]\d{4})([ Tt][0-2]\d:[0-6]\d:[0-6]\d.*)?$", re.DOTALL)
_SIX_MONTHS_S = 15_768_000


def _looks_like_date(text: str) -> bool:
    if _DATE_PREFIX.match(text):
        return True
    try:
        parsedate_to_datetime(text)  # RFC 2822 ("Thu, 26 Nov 2026 10:00:00 GMT")
    except (TypeError, ValueError, IndexError):
        return False
    return True


def infer_type(name: str, value: Any, *, now_s: float) -> str | None:
    """String/Numeric/Boolean/DateTime, or None for values that give no type (null, lists, objects)."""
    lower = name.lower()
    if lower.startswith(("utm_", "$feature/", "$survey_response")) or lower == "$feature_flag_response":
        return "String"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        # Epoch numbers (seconds or milliseconds) under time-ish names, from about six months ago on.
        if any(h in lower for h in _DATETIME_NAME_HINTS) and value >= now_s - _SIX_MONTHS_S:
            return "DateTime"
        return "Numeric"
    if isinstance(value, str):
        text = value.strip()
        if text in ("true", "false", "TRUE", "FALSE"):
            return "Boolean"
        if _looks_like_date(text):
            return "DateTime"
        return "String"
    return None


@dataclass
class PendingDefinitions:
    events: dict[tuple[int, str], datetime] = field(default_factory=dict)
    # (team, kind, group type index or -1, name) → inferred type
    properties: dict[tuple[int, int, int, str], str | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.events or self.properties)


class DefinitionsTracker:
    def __init__(self) -> None:
        self._events: dict[int, set[str]] = {}
        self._event_props: dict[int, set[str]] = {}
        self._person_props: dict[int, set[str]] = {}
        self._group_props: dict[int, set[tuple[int, str]]] = {}

    def collect(self, team_id: int, ev: Event, pending: PendingDefinitions, now_s: float, *,
                group_type_index: int | None = None) -> None:
        """`group_type_index`: for a `$groupidentify`, the index its `$group_type` maps to."""
        if ev.event in _SKIP_EVENTS:
            return
        events = self._events.setdefault(team_id, set())
        if ev.event not in events and (team_id, ev.event) not in pending.events:
            pending.events[(team_id, ev.event)] = ev.timestamp
        props = ev.properties
        if ev.event == "$groupidentify":
            # As PostHog: only the group's own properties become definitions (group properties).
            group_set = props.get("$group_set")
            if group_type_index is not None and isinstance(group_set, dict):
                seen_group = self._group_props.setdefault(team_id, set())
                new = {k for k in group_set if (group_type_index, k) not in seen_group}
                self._add(team_id, GROUP_PROPERTY, new, group_set, pending, now_s, group_type_index)
            return
        seen = self._event_props.get(team_id)
        if seen is None:
            seen = self._event_props[team_id] = set(_SKIP_EVENT_PROPS)
        # issuperset iterates only the event's keys: the common "nothing new" case stays O(keys).
        if not seen.issuperset(props):
            new = {k for k in props if k not in seen}
            self._add(team_id, EVENT_PROPERTY, new, props, pending, now_s)
        if ev.process_person:
            seen_person = self._person_props.setdefault(team_id, set())
            for key in ("$set", "$set_once"):
                values = props.get(key)
                if isinstance(values, dict) and values and not seen_person.issuperset(values):
                    new = {k for k in values if k not in seen_person}
                    self._add(team_id, PERSON_PROPERTY, new, values, pending, now_s)

    def _add(self, team_id: int, kind: int, names: set[str], values: dict[str, Any],
             pending: PendingDefinitions, now_s: float, group_type_index: int = -1) -> None:
        for name in names:
            if not isinstance(name, str) or not name or len(name.encode()) > MAX_NAME:
                continue
            key = (team_id, kind, group_type_index, name)
            current = pending.properties.get(key, "missing")
            if current == "missing" or current is None:
                pending.properties[key] = infer_type(name, values[name], now_s=now_s)

    def committed(self, pending: PendingDefinitions) -> None:
        """Remember names once they are in PostgreSQL. Names first seen as null are remembered
        too (re-sending them every batch would put PostgreSQL back on the hot path); a later
        process start gives them another chance at a type."""
        for team_id, name in pending.events:
            self._events.setdefault(team_id, set()).add(name)
        for (team_id, kind, index, name), ptype in pending.properties.items():
            if kind == GROUP_PROPERTY:
                self._group_props.setdefault(team_id, set()).add((index, name))
            else:
                target = self._event_props if kind == EVENT_PROPERTY else self._person_props
                target.setdefault(team_id, set()).add(name)

    def forget(self, team_id: int) -> None:
        for cache in (self._events, self._event_props, self._person_props, self._group_props):
            cache.pop(team_id, None)


async def persist_definitions(session: AsyncSession, pending: PendingDefinitions) -> None:
    now = clock.now()
    events = [{"environment_id": t, "name": n, "created_at": now, "last_seen_at": ts}
              for (t, n), ts in sorted(pending.events.items())]  # one lock order for every process
    if events:
        await session.execute(pg.insert(EventDefinition).on_conflict_do_nothing(), events)
    props = [
        {"environment_id": t, "type": kind, "group_type_index": g, "name": n, "property_type": ptype,
         "is_numerical": ptype == "Numeric", "created_at": now, "updated_at": now}
        for (t, kind, g, n), ptype in sorted(pending.properties.items(), key=lambda item: item[0])
    ]
    if props:
        stmt = pg.insert(PropertyDefinition)
        # A definition first stored without a type (null value) gets one when a typed value arrives.
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["environment_id", "type", "group_type_index", "name"],
            set_={"property_type": stmt.excluded.property_type, "is_numerical": stmt.excluded.is_numerical},
            where=PropertyDefinition.property_type.is_(None) & stmt.excluded.property_type.is_not(None),
        ), props)

"""Person processing (INGESTION.md §9): property updates, identify/alias merges, personless
events and groups, applied in event order to an in-process view of the authoritative rows.

`PersonProcessor.process` mutates that view and records every change in a `Changes` object;
the writer persists the changes to PostgreSQL and ClickHouse before acknowledging the batch.
On a failed batch the writer calls `forget()`, so the view is reloaded from PostgreSQL. The view is
only a cache: `Changes` records the version each row had before the batch touched it, PostgreSQL
refuses a change whose row moved on meanwhile (another process), and `evict` drops entries other
processes changed (app.ingestion.sync).
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson

from app.ingestion import metrics
from app.ingestion.events import Event

PERSON_NAMESPACE = uuidlib.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")
PERSONLESS_CREATED_AT = datetime(1970, 1, 1, 0, 0, 5, tzinfo=timezone.utc)
MAX_GROUP_TYPES = 5
# Bounded memory: a team's view is dropped wholesale past this many distinct ids and reloaded
# lazily from PostgreSQL (cheap, one query per batch for the ids it needs).
MAX_CACHED_IDS = 500_000

_ILLEGAL_CI = {"anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email",
               "undefined", "true", "false"}
_ILLEGAL_EXACT = {"[object Object]", "NaN", "None", "none", "null", "0", "undefined"}
_NO_PROPERTY_UPDATES = {"$exception", "$$heatmap"}


def person_uuid(team_id: int, distinct_id: str) -> uuidlib.UUID:
    return uuidlib.uuid5(PERSON_NAMESPACE, f"{team_id}:{distinct_id}")


def is_illegal_id(value: str) -> bool:
    text = value.strip()
    if not text:
        return True
    candidates = {text}
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        candidates.add(text[1:-1])
    return any(c.lower() in _ILLEGAL_CI or c in _ILLEGAL_EXACT for c in candidates)


@dataclass(slots=True, eq=False)
class PersonState:
    id: uuidlib.UUID
    created_at: datetime
    properties: dict[str, Any]
    is_identified: bool
    version: int
    dids: set[str] = field(default_factory=set)  # distinct ids known (in this process) to map here
    _json: str | None = None
    _created: tuple[datetime, datetime] | None = None  # (created_at, it without microseconds)

    def properties_json(self) -> str:
        if self._json is None:
            self._json = orjson.dumps(self.properties).decode()
        return self._json

    def created_at_seconds(self) -> datetime:
        """`created_at` to the second (as event rows carry it), remembered until it changes."""
        cached = self._created
        if cached is None or cached[0] is not self.created_at:
            cached = self._created = (self.created_at, self.created_at.replace(microsecond=0))
        return cached[1]

    def touched(self) -> None:
        self._json = None


@dataclass(slots=True, eq=False)
class GroupState:
    properties: dict[str, Any]
    created_at: datetime
    version: int
    _json: str | None = None

    def properties_json(self) -> str:
        if self._json is None:
            self._json = orjson.dumps(self.properties).decode()
        return self._json


@dataclass
class TeamView:
    persons: dict[str, PersonState | None] = field(default_factory=dict)  # None: known to have none
    did_versions: dict[str, int] = field(default_factory=dict)
    personless: set[str] = field(default_factory=set)
    personless_checked: set[str] = field(default_factory=set)
    by_id: dict[uuidlib.UUID, PersonState] = field(default_factory=dict)
    group_types: dict[str, int] | None = None
    groups: dict[tuple[int, str], GroupState | None] = field(default_factory=dict)


@dataclass
class Changes:
    """Everything one batch changed, per team, in application order.

    The `expected_*` maps hold, for every row the batch changes, the version the row had before the
    batch first touched it (None: the batch creates it). PostgreSQL applies each change only where
    the stored version still equals that (compare-and-set), so two processes that both changed a
    row from the same state cannot both win: the loser's batch is prepared again from PostgreSQL.
    """

    persons: dict[tuple[int, uuidlib.UUID], PersonState] = field(default_factory=dict)
    deleted: dict[tuple[int, uuidlib.UUID], PersonState] = field(default_factory=dict)
    distinct_ids: dict[tuple[int, str], tuple[uuidlib.UUID, int]] = field(default_factory=dict)
    personless: set[tuple[int, str]] = field(default_factory=set)
    group_types: dict[tuple[int, str], int] = field(default_factory=dict)
    groups: dict[tuple[int, int, str], GroupState] = field(default_factory=dict)
    expected_persons: dict[tuple[int, uuidlib.UUID], int | None] = field(default_factory=dict)
    expected_dids: dict[tuple[int, str], int | None] = field(default_factory=dict)
    expected_groups: dict[tuple[int, int, str], int | None] = field(default_factory=dict)

    def expect_person(self, team_id: int, person: PersonState) -> None:
        """Call before the batch's first change to `person` (its version is still the stored one)."""
        self.expected_persons.setdefault((team_id, person.id), person.version)

    def __bool__(self) -> bool:
        return bool(self.persons or self.deleted or self.distinct_ids or self.personless or self.group_types
                    or self.groups)


@dataclass(slots=True)
class EventPerson:
    person_id: uuidlib.UUID
    properties_json: str
    created_at: datetime
    mode: str  # 'full' | 'propertyless'
    # Per group type index 0–4: the group's state at ingestion time (None: no such group on the event).
    groups: list[GroupState | None] | None = None


class Loader(Protocol):
    """What the processor reads from PostgreSQL (implemented in app.ingestion.store)."""

    async def load_ids(self, team_id: int, dids: list[str]) -> tuple[dict[str, tuple[PersonState, int]], set[str]]:
        """{distinct_id: (person, distinct-id version)} and the subset used personless."""

    async def load_person_dids(self, team_id: int, person_id: uuidlib.UUID) -> dict[str, int]: ...

    async def load_group_types(self, team_id: int) -> dict[str, int]: ...

    async def load_groups(self, team_id: int, keys: list[tuple[int, str]]) -> dict[tuple[int, str], GroupState]: ...


def _update_properties(props: dict[str, Any], event_props: dict[str, Any]) -> bool:
    if "$set" not in event_props and "$set_once" not in event_props and "$unset" not in event_props:
        return False
    changed = False
    set_once = event_props.get("$set_once")
    if isinstance(set_once, dict):
        for key, value in set_once.items():
            if key not in props:
                props[key] = value
                changed = True
    to_set = event_props.get("$set")
    if isinstance(to_set, dict):
        for key, value in to_set.items():
            if key not in props or props[key] != value:
                props[key] = value
                changed = True
    unset = event_props.get("$unset")
    keys = unset.keys() if isinstance(unset, dict) else unset if isinstance(unset, list) else ()
    for key in keys:
        if isinstance(key, str) and key in props:
            del props[key]
            changed = True
    return changed


class PersonProcessor:
    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self.teams: dict[int, TeamView] = {}

    def forget(self, team_id: int | None = None) -> None:
        if team_id is None:
            self.teams.clear()
        else:
            self.teams.pop(team_id, None)

    def evict(self, team_id: int, *, dids: list[str], person_ids: list[str], groups: list[tuple[int, str]],
              group_types: bool = False) -> None:
        """Forget entries another process changed; the next prefetch reloads them from PostgreSQL."""
        view = self.teams.get(team_id)
        if view is None:
            return
        stale = set(dids)
        for pid in person_ids:
            person = view.by_id.pop(uuidlib.UUID(pid), None)
            if person is not None:
                stale |= person.dids
        for did in stale:
            person = view.persons.pop(did, None)
            if person is not None:
                person.dids.discard(did)
            view.did_versions.pop(did, None)
            view.personless_checked.discard(did)
            view.personless.discard(did)
        for key in groups:
            view.groups.pop(key, None)
        if group_types:
            view.group_types = None

    def view(self, team_id: int) -> TeamView:
        view = self.teams.get(team_id)
        if view is None:
            view = self.teams[team_id] = TeamView()
        return view

    async def prefetch(self, team_id: int, events: list[Event]) -> None:
        """One PostgreSQL round trip for every distinct id (and merge partner) of the batch."""
        view = self.teams.get(team_id)
        # Dropped only here, between batches: mid-batch the view must hold every prefetched id.
        if view is None or len(view.persons) > MAX_CACHED_IDS:
            view = self.teams[team_id] = TeamView()
        wanted = {ev.distinct_id for ev in events}
        for ev in events:
            if ev.event in _MERGE_EVENTS:
                other = _merge_partner(ev)
                if other is not None:
                    wanted.add(other)
        # Set operations in C that walk only the batch's ids: `wanted - dict.keys()` would walk the
        # whole view (up to MAX_CACHED_IDS ids, ~7 ms per batch at 500k), `difference(dict)` does not.
        missing = list((wanted - view.personless_checked) | wanted.difference(view.persons))
        if missing:
            found, personless = await self.loader.load_ids(team_id, missing)
            for did in missing:
                if view.persons.get(did) is not None:
                    pass  # already mapped in this process, which is at least as fresh as PostgreSQL
                elif did in found:
                    state, version = found[did]
                    # One object per person, so ids loaded separately share updates.
                    current = view.by_id.setdefault(state.id, state)
                    current.dids.add(did)
                    view.persons[did] = current
                    view.did_versions[did] = version
                else:
                    view.persons[did] = None
                view.personless_checked.add(did)
            view.personless |= personless
        await self._prefetch_groups(team_id, view, events)

    async def _prefetch_groups(self, team_id: int, view: TeamView, events: list[Event]) -> None:
        """Group type mapping and every group the batch identifies or names in `$groups`."""
        group_events = [ev for ev in events if ev.event == "$groupidentify" or "$groups" in ev.properties]
        if not group_events:
            return
        if view.group_types is None:
            view.group_types = await self.loader.load_group_types(team_id)
        types = view.group_types
        wanted: set[tuple[int, str]] = set()
        for ev in group_events:
            props = ev.properties
            if ev.event == "$groupidentify":
                index = types.get(str(props.get("$group_type")))
                if index is not None and props.get("$group_key") is not None:
                    wanted.add((index, str(props["$group_key"])))
            groups = props.get("$groups")
            if isinstance(groups, dict) and ev.process_person:
                for group_type, key in groups.items():
                    index = types.get(str(group_type))
                    if index is not None and key is not None:
                        wanted.add((index, _group_key(key)))
        keys = [key for key in wanted if key not in view.groups]
        if keys:
            loaded = await self.loader.load_groups(team_id, keys)
            for key in keys:
                view.groups[key] = loaded.get(key)

    async def merge(self, team_id: int, ev: Event, changes: Changes) -> None:
        """Identify/alias side of an event (§9.4); call before `process` for events that need it."""
        other = _merge_partner(ev)
        if other is not None:
            await self._merge(team_id, self.view(team_id), ev, other, changes)

    def process(self, team_id: int, ev: Event, changes: Changes) -> EventPerson:
        """Groups, property updates and the person columns of the event's row (sync: hot path)."""
        view = self.view(team_id)
        props = ev.properties
        groups = self._groups(team_id, view, ev, changes) if "$groups" in props else None
        if not ev.process_person:
            return self._personless(team_id, view, ev, changes)
        if ev.event == "$groupidentify":
            # §9.6: it updates the group and never touches persons.
            self._group_identify(team_id, view, ev, changes)
            result = self._personless(team_id, view, ev, changes)
            result.groups = groups
            return result
        person = view.persons.get(ev.distinct_id)
        if person is None:
            person = self._create(team_id, view, ev.distinct_id, ev, changes, identified=False)
        elif ev.event not in _NO_PROPERTY_UPDATES and _update_properties(person.properties, props):
            changes.expect_person(team_id, person)
            person.version += 1
            person.touched()
            changes.persons[(team_id, person.id)] = person
        properties_json = person.properties_json()
        to_set = props.get("$set")
        if (ev.event in _NO_PROPERTY_UPDATES or "$unset" in props) and isinstance(to_set, dict) and to_set:
            # §9.7: the row shows the event's own $set even where the person is not updated
            # (or the same event's $unset, applied last, removed the key again).
            properties_json = orjson.dumps({**person.properties, **to_set}).decode()
        return EventPerson(person.id, properties_json, person.created_at_seconds(), "full", groups)

    def group_type_index(self, team_id: int, ev: Event) -> int | None:
        """The index a processed `$groupidentify` event's `$group_type` maps to (None: none)."""
        types = self.view(team_id).group_types
        group_type = ev.properties.get("$group_type")
        if not ev.process_person or types is None or group_type is None:
            return None
        return types.get(str(group_type))

    # --- helpers -------------------------------------------------------------------------------

    def _personless(self, team_id: int, view: TeamView, ev: Event, changes: Changes) -> EventPerson:
        did = ev.distinct_id
        person = view.persons.get(did)
        person_id = person.id if person is not None else person_uuid(team_id, did)
        if did not in view.personless:
            view.personless.add(did)
            changes.personless.add((team_id, did))
        return EventPerson(person_id, "{}", PERSONLESS_CREATED_AT, "propertyless")

    def _create(self, team_id: int, view: TeamView, owner: str, ev: Event, changes: Changes, *,
                identified: bool) -> PersonState:
        props: dict[str, Any] = {}
        if ev.event not in _NO_PROPERTY_UPDATES:
            _update_properties(props, ev.properties)
        person = PersonState(id=person_uuid(team_id, owner), created_at=ev.timestamp, properties=props,
                             is_identified=identified, version=0)
        changes.expected_persons.setdefault((team_id, person.id), None)
        view.by_id[person.id] = person
        changes.persons[(team_id, person.id)] = person
        self._attach(team_id, view, owner, person, changes, override=False)
        return person

    def _attach(self, team_id: int, view: TeamView, did: str, person: PersonState, changes: Changes, *,
                override: bool) -> None:
        """Point `did` at `person`; a version > 0 row is what lands in the overrides table."""
        key = (team_id, person.id)
        if key not in changes.expected_persons:
            # The person gains a distinct id: a change of the person too (version bump), so a process
            # that merges it away concurrently (and re-points only the ids it read) loses the race
            # instead of leaving this id pointing at a deleted person.
            changes.expect_person(team_id, person)
            person.version += 1
            changes.persons[key] = person
        previous = view.did_versions.get(did)
        changes.expected_dids.setdefault((team_id, did), previous)
        version = previous + 1 if previous is not None else (1 if override else 0)
        view.persons[did] = person
        view.did_versions[did] = version
        person.dids.add(did)
        changes.distinct_ids[(team_id, did)] = (person.id, version)

    async def _merge(self, team_id: int, view: TeamView, ev: Event, other: str, changes: Changes) -> None:
        target = ev.distinct_id
        if other == target:
            return
        if is_illegal_id(other) or is_illegal_id(target):
            metrics.incr("capture_warnings_total", "illegal_distinct_id_merge")
            return
        po, pt = view.persons.get(other), view.persons.get(target)
        if po is None and pt is None:
            other_personless, target_personless = other in view.personless, target in view.personless
            owner, second = (other, target) if other_personless and not target_personless else (target, other)
            person = self._create(team_id, view, owner, ev, changes, identified=True)
            self._attach(team_id, view, second, person, changes, override=second in view.personless)
        elif po is None or pt is None:
            known = pt if pt is not None else po
            unknown = other if po is None else target
            assert known is not None
            self._attach(team_id, view, unknown, known, changes, override=unknown in view.personless)
            self._identify(team_id, known, changes)
        elif po is pt:
            self._identify(team_id, pt, changes)
        elif po.is_identified and ev.event != "$merge_dangerously":
            metrics.incr("capture_warnings_total", "cannot_merge_already_identified")
        else:
            await self._merge_persons(team_id, view, po, pt, ev, changes)

    def _identify(self, team_id: int, person: PersonState, changes: Changes) -> None:
        if not person.is_identified:
            changes.expect_person(team_id, person)
            person.is_identified = True
            person.version += 1
            changes.persons[(team_id, person.id)] = person

    async def _merge_persons(self, team_id: int, view: TeamView, po: PersonState, pt: PersonState, ev: Event,
                             changes: Changes) -> None:
        stored = await self.loader.load_person_dids(team_id, po.id)
        for did, version in stored.items():
            view.did_versions.setdefault(did, version)
        changes.expect_person(team_id, pt)
        changes.expect_person(team_id, po)
        pt.properties = {**po.properties, **pt.properties}
        # §9.4.6: the event's $set_once/$set/$unset are part of the merge (one version bump, max + 1);
        # `process` applies them again, which changes nothing.
        _update_properties(pt.properties, ev.properties)
        pt.created_at = min(po.created_at, pt.created_at)
        pt.is_identified = True
        pt.version = max(po.version, pt.version) + 1
        pt.touched()
        for did in sorted(set(stored) | po.dids):
            self._attach(team_id, view, did, pt, changes, override=True)
        po.dids.clear()
        view.by_id.pop(po.id, None)
        po.version += 1
        changes.persons.pop((team_id, po.id), None)
        changes.deleted[(team_id, po.id)] = po
        changes.persons[(team_id, pt.id)] = pt

    def _groups(self, team_id: int, view: TeamView, ev: Event, changes: Changes) -> list[GroupState | None] | None:
        """Write `$group_<index>` and return each named group's current state (for groupN_* columns)."""
        groups = ev.properties.get("$groups")
        if not isinstance(groups, dict) or not ev.process_person:
            return None
        states: list[GroupState | None] | None = None
        for group_type, key in groups.items():
            index = self._group_index(team_id, view, str(group_type), changes)
            if index is not None and key is not None:
                ev.properties[f"$group_{index}"] = key
                state = view.groups.get((index, _group_key(key)))
                if state is not None:
                    if states is None:
                        states = [None] * MAX_GROUP_TYPES
                    states[index] = state
        return states

    def _group_index(self, team_id: int, view: TeamView, group_type: str, changes: Changes) -> int | None:
        types = view.group_types if view.group_types is not None else {}
        view.group_types = types
        if group_type in types:
            return types[group_type]
        if len(types) >= MAX_GROUP_TYPES:
            return None
        index = len(types)
        types[group_type] = index
        changes.group_types[(team_id, group_type)] = index
        return index

    def _group_identify(self, team_id: int, view: TeamView, ev: Event, changes: Changes) -> None:
        group_type, key = ev.properties.get("$group_type"), ev.properties.get("$group_key")
        if group_type is None or key is None:
            return
        index = self._group_index(team_id, view, str(group_type), changes)
        if index is None:
            return
        key = _group_key(key)
        state = view.groups.get((index, key))
        group_set = ev.properties.get("$group_set")
        if state is None:
            state = view.groups[(index, key)] = GroupState({}, ev.timestamp, 0)
            changes.expected_groups.setdefault((team_id, index, key), None)
        else:
            changes.expected_groups.setdefault((team_id, index, key), state.version)
            state.version += 1
        if isinstance(group_set, dict):
            state.properties.update(group_set)
            state._json = None
        changes.groups[(team_id, index, key)] = state


def _group_key(key: Any) -> str:
    return key if isinstance(key, str) else orjson.dumps(key).decode()


_MERGE_EVENTS = {"$identify", "$create_alias", "$merge_dangerously"}


def needs_merge(ev: Event) -> bool:
    return ev.event in _MERGE_EVENTS and ev.process_person


def _merge_partner(ev: Event) -> str | None:
    if not ev.process_person:
        return None
    if ev.event == "$identify":
        value = ev.properties.get("$anon_distinct_id")
    elif ev.event in ("$create_alias", "$merge_dangerously"):
        value = ev.properties.get("alias")
    else:
        return None
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()

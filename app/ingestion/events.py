"""Raw event dicts → normalised `Event`s: names, distinct ids, uuids, timestamps (§3–5, §9.1).

v0 refuses a whole request on a bad event (`EventRejected` → 400); v1 drops only that event.
"""

from __future__ import annotations

import os
import time
import uuid as uuidlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from app.elements_chain import chain_from_elements
from app.ingestion import metrics

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_FUTURE = timedelta(hours=23)
MAX_EVENT_NAME = 200
MAX_DISTINCT_ID = 200
# Seconds vs milliseconds: values below this (year 2286 in seconds) are seconds.
_MS_THRESHOLD = 10_000_000_000

# §9.1 step 4: properties copied into $set and $initial_* into $set_once.
PERSON_COPIED = (
    "$app_build", "$app_name", "$app_namespace", "$app_version", "$browser", "$browser_version",
    "$device_type", "$current_url", "$pathname", "$os", "$os_version", "$referring_domain", "$referrer",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_name", "utm_term", "gclid",
    "gad_source", "gbraid", "wbraid", "fbclid", "msclkid",
)
_INITIAL = {name: "$initial_" + name.lstrip("$") for name in PERSON_COPIED}
_COPIED = frozenset(PERSON_COPIED)
_NO_ENRICH = {"$snapshot", "$performance_event"}


class EventRejected(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(slots=True)
class Event:
    uuid: uuidlib.UUID
    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime
    elements_chain: str = ""
    process_person: bool = True


def uuid7() -> uuidlib.UUID:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuidlib.UUID(int=value)


def parse_timestamp(value: Any) -> datetime | None:
    """RFC 3339 / ISO 8601 (naive → UTC), bare dates, epoch seconds or milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, (int, float)):
            return _from_epoch(float(value))
        if not isinstance(value, str) or not value:
            return None
        text = value.strip()
        if text.replace(".", "", 1).isdigit():
            return _from_epoch(float(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = datetime.fromisoformat(text.upper())  # RFC 3339 allows a lower-case `t` and `z`
    except (ValueError, OverflowError, OSError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _from_epoch(number: float) -> datetime:
    seconds = number / 1000 if abs(number) >= _MS_THRESHOLD else number
    return EPOCH + timedelta(seconds=seconds)


def sent_at_from_query(raw: str | None) -> datetime | None:
    """`_` query parameter: client send time in milliseconds; year ≤ 2020 means it was seconds."""
    if not raw:
        return None
    try:
        parsed = EPOCH + timedelta(milliseconds=int(raw))
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.year > 2020 else None


def resolve_timestamp(
    raw_ts: Any, offset: Any, *, now: datetime, sent_at: datetime | None, ignore_sent_at: bool
) -> datetime:
    """§5: skew-correct with `sent_at`, `offset` wins, clamp 23 h into the future."""
    result = now
    future = False  # which side of `now` an out-of-range result lies on
    try:
        if raw_ts is not None:
            parsed = parse_timestamp(raw_ts)
            if parsed is None:
                metrics.incr("capture_warnings_total", "unparseable_timestamp")
            elif sent_at is not None and not ignore_sent_at:
                future = parsed > sent_at
                result = now + (parsed - sent_at)
            else:
                result = parsed
        if isinstance(offset, (int, float)) and not isinstance(offset, bool):
            future = offset < 0
            result = now - timedelta(milliseconds=offset)
    except OverflowError:
        # Beyond what a datetime holds: far in the future is clamped to `now` (step 4, applied
        # before step 5), far in the past is outside years 0–9999 → the Unix epoch (step 5).
        return now if future else EPOCH
    if result - now > MAX_FUTURE:
        result = now
    return result


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def distinct_id_of(raw: dict[str, Any], properties: dict[str, Any]) -> str:
    value = raw.get("distinct_id")
    if value is None:
        value = raw.get("$distinct_id")
    if value is None:
        value = properties.get("distinct_id")
    if value is None or value == "":
        raise EventRejected("missing_distinct_id", "Event is missing a distinct_id.")
    text = _text(value).replace("\x00", "\ufffd")[:MAX_DISTINCT_ID]
    if not text:
        raise EventRejected("missing_distinct_id", "Event has an empty distinct_id.")
    return text


def normalize(
    raw: dict[str, Any],
    *,
    now: datetime,
    sent_at: datetime | None,
    client_ip: str | None,
    sent_at_text: str | None = None,
) -> Event | None:
    """One raw event → Event; None for events dropped by design ($performance_event)."""
    name = raw.get("event")
    if name is None or name == "":
        raise EventRejected("missing_event_name", "Event is missing its name.")
    name = _text(name)[:MAX_EVENT_NAME]
    if name == "$performance_event":
        return None
    props = raw.get("properties")
    if props is None:
        props = {}
    elif not isinstance(props, dict):
        raise EventRejected("invalid_properties", "Event properties must be an object.")
    distinct_id = distinct_id_of(raw, props)
    raw_uuid = raw.get("uuid")
    if raw_uuid is None or raw_uuid == "":
        event_uuid = uuid7()
    else:
        try:
            event_uuid = uuidlib.UUID(str(raw_uuid))
        except ValueError:
            raise EventRejected("invalid_uuid", f"Event uuid {str(raw_uuid)[:64]!r} is not a UUID.") from None
    cookieless = props.get("$cookieless_mode")
    if cookieless is not None and not isinstance(cookieless, bool):
        raise EventRejected("invalid_cookieless_mode", "$cookieless_mode must be a boolean.")

    # `props` is ours to change: it was just parsed from the request.
    for key in ("$set", "$set_once"):
        top = raw.get(key)
        if isinstance(top, dict):
            inner = props.get(key)
            props[key] = {**inner, **top} if isinstance(inner, dict) else dict(top)
    ignore = props.get("$ignore_sent_at") is True
    timestamp = resolve_timestamp(raw.get("timestamp"), raw.get("offset"), now=now, sent_at=sent_at,
                                  ignore_sent_at=ignore)
    elements_chain = ""
    if "$elements_chain" in props or "$elements" in props:
        chain = props.pop("$elements_chain", None)
        elements = props.pop("$elements", None)
        if isinstance(chain, str) and chain:
            elements_chain = chain
        elif isinstance(elements, list):
            elements_chain = chain_from_elements([e for e in elements if isinstance(e, dict)])
    if client_ip and "$ip" not in props:
        props["$ip"] = client_ip
    if sent_at is not None and "$sent_at" not in props:
        props["$sent_at"] = sent_at_text or sent_at.isoformat()
    event = Event(uuid=event_uuid, event=name, distinct_id=distinct_id, properties=props, timestamp=timestamp,
                  elements_chain=elements_chain)
    prepare_person_fields(event)
    return event


def prepare_person_fields(event: Event) -> None:
    """§9.1 steps 4–5: copy well-known properties into $set/$initial_*, decide person processing."""
    props = event.properties
    process = props.get("$process_person_profile") is not False
    event.process_person = process
    if not process or event.event == "$groupidentify":
        for key in ("$set", "$set_once", "$unset"):
            props.pop(key, None)
        if not process:
            props["$process_person_profile"] = False
        return
    props.pop("$process_person_profile", None)
    if event.event in _NO_ENRICH:
        return
    present = _COPIED.intersection(props)
    if not present:
        return
    is_server = props.get("$is_server") is True
    to_set: dict[str, Any] | None = None
    to_set_once: dict[str, Any] | None = None
    for name in PERSON_COPIED:
        if name in present:
            if is_server and name in ("$os", "$os_version"):
                continue
            if to_set is None:
                to_set = props["$set"] = _as_dict(props.get("$set"))
                to_set_once = props["$set_once"] = _as_dict(props.get("$set_once"))
            value = props[name]
            to_set.setdefault(name, value)
            to_set_once.setdefault(_INITIAL[name], value)  # type: ignore[union-attr]


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}

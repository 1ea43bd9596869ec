"""Capture use-cases: a decoded request → normalised events → the writer (§2–§7)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app import clock
from app.ingestion import metrics
from app.ingestion.decode import MAX_EVENT_BYTES, Decoded, decode_v0, decode_v1
from app.ingestion.errors import CaptureInvalid, CaptureTooLarge, CaptureUnauthorized, CaptureUnavailable
from app.ingestion.events import Event, EventRejected, normalize, parse_timestamp, sent_at_from_query
from app.ingestion.service import Ingestion
from app.ingestion.writer import WriterUnavailable


@dataclass
class CaptureRequest:
    path_kind: str
    method: str
    body: bytes
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    client_ip: str | None
    limit: int


def _event_token(raw: dict[str, Any]) -> Any:
    for key in ("token", "api_key", "$token"):
        if raw.get(key) is not None:
            return raw[key]
    props = raw.get("properties")
    return props.get("token") if isinstance(props, dict) else None


def find_token(decoded: Decoded, query: dict[str, str]) -> Any:
    """§4.1 lookup order; without an envelope token every event must agree."""
    env = decoded.envelope
    for value in (env.get("api_key"), env.get("token"), decoded.form_token):
        if value is not None:
            return value
    tokens = {orjson.dumps(t) for t in (_event_token(e) for e in decoded.events) if t is not None}
    if len(tokens) > 1:
        raise CaptureUnauthorized("Events of one request carry different API keys.", code="conflicting_tokens")
    if tokens:
        return orjson.loads(tokens.pop())
    return query.get("token") or query.get("api_key")


async def capture_v0(ingestion: Ingestion, req: CaptureRequest) -> None:
    content_type = req.headers.get("content-type", "").lower()
    decoded = decode_v0(path_kind=req.path_kind, body=req.body, query=req.query, content_type=content_type,
                        content_encoding=req.headers.get("content-encoding", ""), limit=req.limit)
    token = find_token(decoded, req.query)
    if token is None:
        raise CaptureUnauthorized("API key not provided. You can find your project API key in settings.",
                                  code="missing_token")
    team_id = await ingestion.team_for_token(token)
    raw_sent_at = decoded.envelope.get("sent_at")
    # §5: the envelope's `sent_at`, else the `_` query parameter (also when `sent_at` is unparseable).
    sent_at = parse_timestamp(raw_sent_at) if raw_sent_at else None
    if sent_at is None:
        sent_at = sent_at_from_query(req.query.get("_"))
    now = clock.now()
    sent_at_text = sent_at.isoformat() if sent_at is not None else None
    events: list[Event] = []
    check_size = decoded.payload_size > MAX_EVENT_BYTES
    for raw in decoded.events:
        if check_size and len(orjson.dumps(raw)) > MAX_EVENT_BYTES:
            raise CaptureTooLarge("An event is larger than 1 MB.", code="event_too_large")
        try:
            event = normalize(raw, now=now, sent_at=sent_at, client_ip=req.client_ip, sent_at_text=sent_at_text)
        except EventRejected as exc:
            raise CaptureInvalid(exc.detail, code=exc.code) from None
        if event is not None:
            events.append(event)
    if not events:
        metrics.incr("capture_requests_filtered_total")
        return
    if not await ingestion.admit(team_id, len(events)):
        return  # over the limit in "drop" mode: accepted and discarded (§6)
    await _submit(ingestion, team_id, events, historical=decoded.envelope.get("historical_migration") is True)


async def _submit(ingestion: Ingestion, team_id: int, events: list[Event], *, historical: bool) -> list[bool]:
    try:
        return await ingestion.writer.submit(team_id, events, historical=historical)
    except WriterUnavailable as exc:
        raise CaptureUnavailable(f"Event storage is temporarily unavailable ({exc}); retry.") from None


# --- v1 ---------------------------------------------------------------------------------------------

_V1_REQUIRED = ("user-agent", "posthog-sdk-info", "posthog-attempt", "posthog-request-id", "posthog-request-timestamp")


def _v1_headers(headers: dict[str, str]) -> tuple[str, datetime, str, str]:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CaptureUnauthorized("Authorization: Bearer <project API key> is required.", code="missing_token")
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise CaptureInvalid("Content-Type must be application/json.", code="invalid_content_type", status_code=415)
    for name in _V1_REQUIRED:
        if not headers.get(name, "").strip():
            raise CaptureInvalid(f"Missing required header {name}.", code="missing_header", attr=name)
    try:
        attempt = int(headers["posthog-attempt"])
    except ValueError:
        attempt = 0
    if attempt < 1:
        raise CaptureInvalid("PostHog-Attempt must be an integer ≥ 1.", code="invalid_header", attr="posthog-attempt")
    try:
        uuid.UUID(headers["posthog-request-id"])
    except ValueError:
        raise CaptureInvalid("PostHog-Request-Id must be a UUID.", code="invalid_header",
                             attr="posthog-request-id") from None
    sent_at = parse_timestamp(headers["posthog-request-timestamp"])
    if sent_at is None:
        raise CaptureInvalid("PostHog-Request-Timestamp must be RFC 3339.", code="invalid_header",
                             attr="posthog-request-timestamp")
    lib, _, version = headers["posthog-sdk-info"].rpartition("/")
    return token.strip(), sent_at, lib or headers["posthog-sdk-info"], version


def _v1_event(raw: Any, lib: str, version: str) -> dict[str, Any]:
    """A v1 event → the v0 shape `normalize` takes; raises EventRejected for `drop`."""
    if not isinstance(raw, dict):
        raise EventRejected("invalid_event", "event must be an object")
    for key in ("uuid", "timestamp"):
        if not raw.get(key):
            raise EventRejected(f"missing_{key}", f"event is missing {key}")
    if not isinstance(raw.get("distinct_id"), str) or not raw["distinct_id"]:
        raise EventRejected("missing_distinct_id", "distinct_id must be a non-empty string")
    if parse_timestamp(raw["timestamp"]) is None:
        raise EventRejected("invalid_timestamp", "timestamp must be RFC 3339")
    props = raw.get("properties") or {}
    if not isinstance(props, dict):
        raise EventRejected("invalid_properties", "properties must be an object")
    props = dict(props)
    if raw.get("session_id") is not None:
        props["$session_id"] = raw["session_id"]
    if raw.get("window_id") is not None:
        props["$window_id"] = raw["window_id"]
    options = raw.get("options") or {}
    if isinstance(options, dict):
        for option, name in (("process_person_profile", "$process_person_profile"),
                             ("disable_skew_adjustment", "$ignore_sent_at"), ("cookieless_mode", "$cookieless_mode")):
            if option in options:
                props[name] = options[option]
    props.setdefault("$lib", lib)
    if version:
        props.setdefault("$lib_version", version)
    return {"event": raw.get("event"), "uuid": raw["uuid"], "distinct_id": raw["distinct_id"],
            "timestamp": raw["timestamp"], "properties": props}


async def capture_v1(ingestion: Ingestion, req: CaptureRequest) -> dict[str, dict[str, str]]:
    token, sent_at, lib, version = _v1_headers(req.headers)
    team_id = await ingestion.team_for_token(token)
    doc = decode_v1(req.body, req.headers.get("content-encoding", ""), req.limit)
    now = clock.now()
    results: dict[str, dict[str, str]] = {}
    if not await ingestion.admit(team_id, len(doc["batch"])):
        for index, raw in enumerate(doc["batch"]):
            key = str(raw.get("uuid") or f"#{index}") if isinstance(raw, dict) else f"#{index}"
            results[key] = {"result": "drop", "details": "over the project's event rate limit"}
        return results
    accepted: list[tuple[str, Event]] = []
    for index, raw in enumerate(doc["batch"]):
        key = str(raw.get("uuid") or f"#{index}") if isinstance(raw, dict) else f"#{index}"
        try:
            if len(orjson.dumps(raw)) > MAX_EVENT_BYTES:
                raise EventRejected("event_too_large", "event is larger than 1 MB")
            event = normalize(_v1_event(raw, lib, version), now=now, sent_at=sent_at, client_ip=req.client_ip)
        except EventRejected as exc:
            metrics.incr("capture_events_dropped_total", exc.code)
            results[key] = {"result": "drop", "details": exc.detail}
            continue
        results[key] = {"result": "ok"}
        if event is not None:
            accepted.append((key, event))
    if accepted:
        try:
            await ingestion.writer.submit(team_id, [e for _, e in accepted],
                                          historical=doc.get("historical_migration") is True)
        except WriterUnavailable:
            for key, _ in accepted:
                results[key] = {"result": "retry", "details": "storage temporarily unavailable"}
    return results

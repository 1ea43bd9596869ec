"""Request body → list of raw event dicts (INGESTION.md §2 for v0, §3.3 for v1).

Everything here is pure and synchronous: the router reads the (size-capped) body and hands the
bytes in. Decompression streams with a cap, so a small gzip bomb can never allocate more than
the path's limit.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from app.ingestion.errors import CaptureInvalid, CaptureTooLarge

MB = 1024 * 1024
# §7: body caps per path family, applied again to the decompressed size.
LIMIT_E = 2 * MB
LIMIT_BATCH = 20 * MB
LIMIT_REPLAY = 25 * MB
MAX_EVENT_BYTES = 1 * MB

_B64 = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
_B64_LOOSE = re.compile(rb"^[A-Za-z0-9+/_-]+={0,2}$")
_GZIP_MAGIC = b"\x1f\x8b\x08"
_GZIP_HINTS = {"gzip", "gzip-js"}
_LZ_HINTS = {"lz64", "lz-string"}
_B64_HINTS = {"base64", "b64"}
# Paths where a still-base64 payload is decoded once more (legacy browser clients).
_B64_RETRY_PATHS = {"e", "capture", "engage", "track"}


@dataclass
class Decoded:
    events: list[dict[str, Any]]
    envelope: dict[str, Any] = field(default_factory=dict)  # the `{batch: ...}` object, if any
    form_token: str | None = None
    compression: str | None = None
    payload_size: int = 0  # bytes of JSON after every unwrapping (the per-event size check needs it)


def looks_base64(raw: bytes) -> bool:
    return len(raw) >= 4 and len(raw) % 4 == 0 and _B64.match(raw) is not None


def gunzip(data: bytes, limit: int) -> bytes:
    return _inflate(data, limit, zlib.MAX_WBITS | 16, "gzip")


def inflate(data: bytes, limit: int) -> bytes:
    """`Content-Encoding: deflate` is zlib-wrapped (RFC 9110)."""
    return _inflate(data, limit, zlib.MAX_WBITS, "deflate")


def _inflate(data: bytes, limit: int, wbits: int, name: str) -> bytes:
    decomp = zlib.decompressobj(wbits)
    out = bytearray()
    chunk = data
    try:
        while chunk:
            # max_length bounds each step, so a bomb stops at the cap instead of exhausting memory.
            out += decomp.decompress(chunk, 64 * 1024)
            if len(out) > limit:
                raise CaptureTooLarge(f"Decompressed payload is larger than {limit} bytes.", code="payload_too_large")
            chunk = decomp.unconsumed_tail
        out += decomp.flush()
    except zlib.error as exc:
        raise CaptureInvalid(f"Failed to decode {name} payload: {exc}", code="invalid_compression") from None
    if len(out) > limit:
        raise CaptureTooLarge(f"Decompressed payload is larger than {limit} bytes.", code="payload_too_large")
    return bytes(out)


def _lz64(data: bytes, limit: int) -> bytes:
    from lzstring import LZString

    try:
        text = LZString().decompressFromBase64(data.decode("ascii").strip())
    except Exception:  # the package raises assorted errors on garbage input
        text = None
    if not text:
        raise CaptureInvalid("Failed to decode lz-string payload.", code="invalid_compression")
    out = text.encode("utf-8", "surrogatepass")
    if len(out) > limit:
        raise CaptureTooLarge(f"Decompressed payload is larger than {limit} bytes.", code="payload_too_large")
    return out


def _b64(data: bytes) -> bytes | None:
    """Standard padded base64, else the URL-safe alphabet and/or missing padding (PostHog's
    legacy endpoint padded before decoding; GET beacons may use the URL-safe alphabet)."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass
    if _B64_LOOSE.match(data) is None:
        return None
    body = data.rstrip(b"=").replace(b"-", b"+").replace(b"_", b"/")
    if len(body) % 4 == 1:
        return None
    try:
        return base64.b64decode(body + b"=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _looks_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


def _unwrap_b64(raw: bytes) -> bytes | None:
    """A payload that is base64 by a looser reading (no padding, URL-safe) and decodes to JSON or
    gzip; None otherwise. Only tried on what would otherwise be refused as not JSON."""
    stripped = raw.strip()
    if _B64_LOOSE.match(stripped) is None:
        return None
    decoded = _b64(stripped)
    if decoded is None:
        return None
    if decoded[:3] == _GZIP_MAGIC or _looks_json(decoded):
        return decoded
    return None


def _looks_form(raw: bytes) -> bool:
    head = raw[:128]
    return any(head.startswith(key) or b"&" + key in head for key in (b"data=", b"compression=", b"_=", b"ip="))


def _restore_plus(data: bytes) -> bytes:
    """url-decoding turned the `+` of a base64 value into spaces: put them back."""
    if b" " in data and not _looks_json(data):
        return data.strip().replace(b" ", b"+")
    return data


def _form(raw: bytes) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise CaptureInvalid("Form body could not be parsed.", code="invalid_form") from None
    return {k: v[0] for k, v in fields.items() if v}


def decode_document(
    *,
    path_kind: str,
    body: bytes,
    query: dict[str, str],
    content_type: str,
    content_encoding: str,
    limit: int,
) -> tuple[Any, dict[str, str], str, int]:
    """Steps 1–5 of §2 and the JSON parse: (document, form fields, compression hint, payload bytes)."""
    from_query = bool(query.get("data"))
    raw: bytes = query["data"].encode("utf-8") if from_query else body
    if not raw or not raw.strip():
        raise CaptureInvalid("request missing data payload", code="no_data")
    if from_query:
        raw = _restore_plus(raw)

    form: dict[str, str] = {}
    undecoded = raw  # an lz-string payload is base64 text too: it must not be unwrapped first
    if looks_base64(raw.strip()):
        decoded = _b64(raw.strip())
        if decoded is not None:
            raw = decoded
    is_form = "application/x-www-form-urlencoded" in content_type and (raw is undecoded or _looks_form(raw))
    if is_form or (raw[:5] == b"data=" and not from_query):
        form = _form(raw)
        data = form.get("data")
        if data is None:
            raise CaptureInvalid("request missing data payload", code="no_data")
        raw = undecoded = _restore_plus(data.encode("utf-8"))

    hint = (form.get("compression") or query.get("compression") or content_encoding or "").strip().lower()
    if raw[:3] != _GZIP_MAGIC and (hint in _GZIP_HINTS or hint in _B64_HINTS):
        # The hint names a wrapping the bytes may not have: gzip sent as base64 text (form
        # fields, query params), or plain JSON under a stale hint. Never refuse on the hint alone.
        raw = raw if _looks_json(raw) else (_unwrap_b64(raw) or raw)
        if _looks_json(raw):
            hint = ""
    if hint in _GZIP_HINTS or raw[:3] == _GZIP_MAGIC:
        payload = gunzip(raw, limit)
    elif hint in _LZ_HINTS:
        payload = _lz64(undecoded, limit)
    elif hint in _B64_HINTS or (path_kind in _B64_RETRY_PATHS and looks_base64(raw.strip())):
        payload = _b64(raw.strip())
        if payload is None:
            raise CaptureInvalid("Failed to decode base64 payload.", code="invalid_base64")
        if payload[:3] == _GZIP_MAGIC:
            payload = gunzip(payload, limit)
    else:
        payload = raw
        if not _looks_json(payload):
            unwrapped = _unwrap_b64(payload)
            if unwrapped is not None:
                payload = gunzip(unwrapped, limit) if unwrapped[:3] == _GZIP_MAGIC else unwrapped
    if len(payload) > limit:
        raise CaptureTooLarge(f"Payload is larger than {limit} bytes.")

    return parse_json(payload), form, hint, len(payload)


def decode_v0(
    *,
    path_kind: str,
    body: bytes,
    query: dict[str, str],
    content_type: str,
    content_encoding: str,
    limit: int,
) -> Decoded:
    """Steps 1–6 of §2. `path_kind` is the first path segment (`e`, `batch`, `capture`, …)."""
    doc, form, hint, size = decode_document(path_kind=path_kind, body=body, query=query, content_type=content_type,
                                            content_encoding=content_encoding, limit=limit)
    out = Decoded(events=[], form_token=form.get("api_key") or form.get("token"), compression=hint or None,
                  payload_size=size)
    if isinstance(doc, list):
        out.events = doc
    elif isinstance(doc, dict) and "batch" in doc:
        batch = doc["batch"]
        if not isinstance(batch, list):
            raise CaptureInvalid("`batch` must be a list of events.", code="invalid_batch")
        out.events, out.envelope = batch, doc
    elif isinstance(doc, dict) and "event" in doc:
        out.events = [doc]
    elif isinstance(doc, dict) and path_kind == "engage":
        out.events = [{**doc, "event": "$identify"}]
    else:
        raise CaptureInvalid("Payload must be an event, a list of events or a {batch} object.", code="invalid_shape")
    if not out.events:
        raise CaptureInvalid("The batch is empty.", code="empty_batch")
    for event in out.events:
        if not isinstance(event, dict):
            raise CaptureInvalid("Every event must be a JSON object.", code="invalid_event")
    return out


def parse_json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses lone surrogates, which browsers do send (JSON.stringify of broken strings).
    try:
        import json

        return json.loads(payload.decode("utf-8", "replace"))
    except (ValueError, UnicodeDecodeError):
        raise CaptureInvalid("Payload is not valid JSON.", code="invalid_json") from None


def decode_v1(body: bytes, content_encoding: str, limit: int) -> dict[str, Any]:
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        body = gunzip(body, limit)
    elif encoding == "deflate":
        body = inflate(body, limit)
    elif encoding not in ("", "identity"):
        raise CaptureInvalid(f"Unsupported Content-Encoding {encoding!r}.", code="unsupported_encoding",
                             status_code=415)
    doc = parse_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("batch"), list):
        raise CaptureInvalid("Body must be an object with a `batch` list.", code="invalid_shape")
    if not doc["batch"]:
        raise CaptureInvalid("The batch is empty.", code="empty_batch")
    return doc

"""Pure ASGI middleware: request ids and access logs, security headers, optional trailing
slashes, body-size limits and the JSON-only rule for API writes."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import AppError, ParseError, PayloadTooLarge, UnsupportedMediaType, unhandled_error
from app.ingestion.decode import LIMIT_REPLAY
from app.logs import request_id_var

log = logging.getLogger("app.access")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]
# Defaults when the app has no settings yet; the settings `api_max_body_bytes`/`api_max_json_depth` win.
DEFAULT_API_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_API_MAX_JSON_DEPTH = 64
# The largest capture limit (25 MB on `/s`, spec/INGESTION.md §7): outside `/api/` the middleware's
# ceiling never undercuts the capture routes' own limits.
CAPTURE_CEILING_BYTES = LIMIT_REPLAY
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
# Routes that also accept form bodies (framework default on PostHog's element endpoints) and
# the capture endpoints, which decode their own bodies.
_NON_JSON_OK = re.compile(r"^/api/environments/[^/]+/elements(/|$)|^/(?!api/)")


async def _send_error(send: Send, err: AppError, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(err.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status_code, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Request id (from `X-Request-ID` when sane, else new), security headers and an access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Starlette answers unhandled errors in ServerErrorMiddleware, outside this one, so its 500
            # would lack the security headers and the request id: answer it here instead.
            if responded:
                raise
            await _send_error(send_with_headers, unhandled_error(sys.exc_info()[1], scope.get("path")))
        finally:
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)


class TrailingSlashMiddleware:
    """`/insights` and `/insights/` are the same route: API paths get their trailing slash here,
    before routing, instead of a redirect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            scope.setdefault("state", {})["had_trailing_slash"] = path.endswith("/")
            if path.startswith("/api/") and not path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path + "/"
                if scope.get("raw_path"):
                    scope["raw_path"] = scope["raw_path"] + b"/"
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for bodies over the limit, whether announced by Content-Length or streamed; 415 for
    non-JSON bodies on JSON-only API routes; 400 for API JSON bodies nested too deeply.

    `/api/` routes get `api_max_body_bytes` (at most `max_bytes`) and `api_max_json_depth` from the
    app's settings. Capture routes enforce their own per-path limits (spec/INGESTION.md §7, 413 with
    CORS headers), so outside `/api/` this is only a ceiling no capture limit is below."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _api_limits(self, scope: Scope) -> tuple[int, int]:
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        limit = getattr(settings, "api_max_body_bytes", DEFAULT_API_MAX_BODY_BYTES)
        depth = getattr(settings, "api_max_json_depth", DEFAULT_API_MAX_JSON_DEPTH)
        return min(limit, self.max_bytes), depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        api = scope["path"].startswith("/api/")
        if api:
            max_bytes, max_depth = self._api_limits(scope)
        else:
            max_bytes, max_depth = max(self.max_bytes, CAPTURE_CEILING_BYTES), 0
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = 0
            if declared > max_bytes:
                await _send_error(send, PayloadTooLarge(f"Request body is larger than {max_bytes} bytes."))
                return
        ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        json_write = api and scope["method"] in ("POST", "PUT", "PATCH")
        if json_write and not _NON_JSON_OK.match(scope["path"]) and (length not in (None, b"0")):
            if ctype and not (ctype == "application/json" or ctype.endswith("+json")):
                await _send_error(send, UnsupportedMediaType(f'Unsupported media type "{ctype}" in request.'))
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge()
            return message

        if json_write and (not ctype or ctype == "application/json" or ctype.endswith("+json")):
            # Read the (bounded) body once here to check its nesting before anything parses it: deeply
            # nested JSON overflows recursive code downstream (validation, the query engine, json.dumps
            # when storing), which must never become a RecursionError and a 500.
            try:
                body = await _read_all(limited_receive)
            except _BodyTooLarge:
                await _send_error(send, PayloadTooLarge(f"Request body is larger than {max_bytes} bytes."))
                return
            if json_too_deep(body, max_depth):
                await _send_error(send, ParseError(f"JSON parse error - nesting is deeper than {max_depth} levels."))
                return
            receive = _replay(body, receive)
            limited_receive = receive  # already bounded

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _send_error(send, PayloadTooLarge(f"Request body is larger than {max_bytes} bytes."))


async def _read_all(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body over once, then waits on the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# A JSON string; an unterminated one runs to the end of the input, so every match attempt succeeds
# and the scan stays linear (retrying at each later quote would be quadratic).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OBJECTS_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")


def json_too_deep(raw: bytes, max_depth: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than `max_depth`, without parsing it. Strings
    are dropped (brackets inside them do not count), then only the brackets are kept and each pass
    removes the innermost level (`[]` pairs): all in C, linear per pass. Malformed JSON (a pass that
    removes nothing) is left to the parser."""
    if max_depth <= 0 or raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(_OBJECTS_AS_ARRAYS, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return False
        brackets = shorter
    return bool(brackets)


class _BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body reader re-raises it instead of calling it a parse error."""

    def __init__(self) -> None:
        super().__init__(status_code=413)

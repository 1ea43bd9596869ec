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

from app.errors import AppError, PayloadTooLarge, UnsupportedMediaType, unhandled_error
from app.logs import request_id_var

log = logging.getLogger("app.access")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]
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
    """413 for bodies over the limit, whether announced by Content-Length or streamed, and 415
    for non-JSON bodies on JSON-only API routes."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = 0
            if declared > self.max_bytes:
                await _send_error(send, PayloadTooLarge(f"Request body is larger than {self.max_bytes} bytes."))
                return
        if (
            scope["method"] in ("POST", "PUT", "PATCH")
            and scope["path"].startswith("/api/")
            and not _NON_JSON_OK.match(scope["path"])
            and (length not in (None, b"0"))
        ):
            ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
            if ctype and not (ctype == "application/json" or ctype.endswith("+json")):
                await _send_error(send, UnsupportedMediaType(f'Unsupported media type "{ctype}" in request.'))
                return

        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _send_error(send, PayloadTooLarge(f"Request body is larger than {self.max_bytes} bytes."))


class _BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body reader re-raises it instead of calling it a parse error."""

    def __init__(self) -> None:
        super().__init__(status_code=413)

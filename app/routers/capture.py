"""PostHog-compatible capture endpoints (spec/INGESTION.md §1). Outside `/api/`: SDKs authenticate
with the project token in the payload, and every answer carries permissive CORS headers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from app.errors import AppError, error_responses
from app.ingestion import metrics
from app.ingestion.capture import CaptureRequest, capture_v0, capture_v1
from app.ingestion.decode import LIMIT_BATCH, LIMIT_E, LIMIT_REPLAY, decode_document
from app.ingestion.errors import CaptureTooLarge
from app.ingestion.ratelimit import CaptureLimiter
from app.ingestion.service import Ingestion, normalize_token

router = APIRouter(tags=["capture"], include_in_schema=True)

OK = {"status": 1}
# What capture answers besides 200 (spec/INGESTION.md §6), so the OpenAPI names every status it sends.
_ERRORS = error_responses(400, 401, 413, 415, 429, 503)
_V0_PATHS = ("/batch", "/e", "/i/v0/e", "/capture", "/track", "/engage")
_METHODS = ["POST", "GET", "OPTIONS"]


def _cors(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    headers = {
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get("access-control-request-headers") or "*",
        "Access-Control-Max-Age": "86400",
        "Vary": "Origin",
    }
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
    else:
        headers["Access-Control-Allow-Origin"] = "*"
    return headers


def _ingestion(request: Request) -> Ingestion:
    ingestion = request.app.state.ingestion
    if ingestion.limiter is None:
        ingestion.limiter = CaptureLimiter.from_settings(request.app.state.settings,
                                                         request.app.state.backends.redis_url)
    return ingestion


def _error(request: Request, exc: AppError) -> JSONResponse:
    metrics.rejected(exc.code, exc.detail, path=request.url.path)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers={**_cors(request), **exc.headers})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise CaptureTooLarge(f"Request body is larger than {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise CaptureTooLarge(f"Request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _client_ip(request: Request) -> str | None:
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip() or None
    return request.client.host if request.client else None


async def _capture_request(request: Request, kind: str, limit: int) -> CaptureRequest:
    return CaptureRequest(
        path_kind=kind, method=request.method, body=await _read_body(request, limit),
        query=dict(request.query_params), headers={k.lower(): v for k, v in request.headers.items()},
        client_ip=_client_ip(request), limit=limit,
    )


async def _v0(request: Request) -> Response:
    if request.method == "OPTIONS":
        return JSONResponse(OK, headers=_cors(request))
    path = request.url.path.strip("/")
    kind = "e" if path.startswith("i/v0/e") else path.split("/")[0]
    limit = LIMIT_BATCH if kind == "batch" else LIMIT_E
    try:
        await capture_v0(_ingestion(request), await _capture_request(request, kind, limit))
    except AppError as exc:
        return _error(request, exc)
    metrics.incr("capture_requests_total", kind)
    if request.query_params.get("beacon") == "1":
        return Response(status_code=204, headers=_cors(request))
    return JSONResponse(OK, headers=_cors(request))


# Event capture POSTs by exact path, filled by `_register(direct=True)`: `direct_post` answers them.
DIRECT_POST: dict[str, Any] = {}


def _register(path: str, endpoint, methods: list[str], summary: str | None, *, direct: bool = False) -> None:
    """Both slash variants; only POST on the slash variant is documented (one operation id each)."""
    for variant in (path, path + "/"):
        if direct:
            DIRECT_POST[variant] = endpoint
        for method in methods:
            documented = summary is not None and method == "POST" and variant.endswith("/")
            suffix = "slash" if variant.endswith("/") else "bare"
            operation_id = f"capture_{method.lower()}_{variant.strip('/').replace('/', '_')}_{suffix}"
            router.add_api_route(variant, endpoint, methods=[method], include_in_schema=documented,
                                 summary=summary, response_model=None, operation_id=operation_id,
                                 responses=_ERRORS)


for _path in _V0_PATHS:
    _register(_path, _v0, _METHODS, f"Capture events ({_path})", direct=True)


async def _v1(request: Request) -> Response:
    if request.method == "OPTIONS":
        return JSONResponse(OK, headers=_cors(request))
    request_id = request.headers.get("posthog-request-id", "")
    echo = {"PostHog-Request-Id": request_id} if request_id else {}
    try:
        results = await capture_v1(_ingestion(request), await _capture_request(request, "v1", LIMIT_BATCH))
    except AppError as exc:
        exc.headers.update(echo)
        return _error(request, exc)
    metrics.incr("capture_requests_total", "v1")
    return JSONResponse({"results": results}, headers={**_cors(request), **echo})


_register("/i/v1/analytics/events", _v1, ["POST", "OPTIONS"], "Capture events (v1, per-event results)", direct=True)


async def direct_post(scope: Scope, receive: Receive, send: Send) -> None:
    """A capture POST answered without FastAPI's routing, dependency and middleware layers (the app
    sends them here, see `app.main.TallyApp`). Those layers cost ~350 µs per request, a sixth of
    the event loop's time under `/batch/` load, and capture uses none of them: it reads its own
    body with its own limits and answers its own errors."""
    response = await DIRECT_POST[scope["path"]](Request(scope, receive))
    await response(scope, receive, send)


async def _replay(request: Request) -> Response:
    """Session replay is accepted and discarded (§1: MAY)."""
    if request.method != "OPTIONS":
        try:
            await _read_body(request, LIMIT_REPLAY)
        except AppError as exc:
            return _error(request, exc)
    return JSONResponse(OK, headers=_cors(request))


_register("/s", _replay, _METHODS, None)


def _config(token: str) -> dict:
    return {
        "token": token, "supportedCompression": ["gzip", "gzip-js"], "autocapture_opt_out": False,
        "hasFeatureFlags": False, "sessionRecording": False, "heatmaps": False, "elementsChainAsString": True,
    }


async def _flags_token(request: Request) -> str:
    """The token of a flags request body (posthog-js sends it gzip/base64-wrapped like capture); "" if none."""
    try:
        doc, form, _, _ = decode_document(
            path_kind="flags", body=await _read_body(request, LIMIT_E), query=dict(request.query_params),
            content_type=request.headers.get("content-type", "").lower(),
            content_encoding=request.headers.get("content-encoding", ""), limit=LIMIT_E)
    except AppError:
        return ""
    token = (doc.get("token") or doc.get("api_key")) if isinstance(doc, dict) else None
    token = token or form.get("token") or form.get("api_key")
    return token.strip() if isinstance(token, str) else ""


async def _flags(request: Request) -> Response:
    """A minimal flags/config answer (§1.1): no flags, autocapture allowed."""
    if request.method == "OPTIONS":
        return JSONResponse(OK, headers=_cors(request))
    token = request.query_params.get("token") or request.query_params.get("api_key") or await _flags_token(request)
    body = {**_config(token), "featureFlags": {}, "featureFlagPayloads": {}, "flags": {},
            "errorsWhileComputingFlags": False}
    return JSONResponse(body, headers=_cors(request))


for _path in ("/flags", "/decide"):
    _register(_path, _flags, _METHODS, None)


@router.api_route("/array/{token}/config", methods=["GET", "OPTIONS"], include_in_schema=False)
@router.api_route("/array/{token}/config/", methods=["GET", "OPTIONS"], include_in_schema=False)
async def remote_config(request: Request, token: str) -> Response:
    """Remote config for posthog-js (§1.1)."""
    if request.method == "OPTIONS":
        return JSONResponse(OK, headers=_cors(request))
    try:
        normalize_token(token)
    except AppError as exc:
        return _error(request, exc)
    return JSONResponse(_config(token.strip()), headers=_cors(request))


@router.get("/_metrics/ingestion", include_in_schema=False)
async def ingestion_metrics() -> PlainTextResponse:
    """Ingestion counters in Prometheus text format."""
    return PlainTextResponse(metrics.render())

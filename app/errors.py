"""Error hierarchy and the one renderer of the spec's error envelope (spec/API.md §1.6):
`{"type", "code", "detail", "attr"}` for every 4xx/5xx the service produces."""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)


class AppError(Exception):
    status_code = 500
    type = "server_error"
    code = "error"
    default_detail = "A server error occurred."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        attr: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail if detail is not None else self.default_detail
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.attr = attr
        self.headers = headers or {}
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}


class ValidationFailed(AppError):
    status_code = 400
    type = "validation_error"
    code = "invalid_input"
    default_detail = "Invalid input."


class QueryError(ValidationFailed):
    """The query engine rejected a query; `attr` is the JSON path of the offending field."""


class InvalidRequest(AppError):
    status_code = 400
    type = "invalid_request"
    code = "invalid_request"


class ParseError(InvalidRequest):
    code = "parse_error"
    default_detail = "Malformed request."


class NotFound(InvalidRequest):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class MethodNotAllowed(InvalidRequest):
    status_code = 405
    code = "method_not_allowed"


class NotAcceptable(InvalidRequest):
    status_code = 406
    code = "not_acceptable"
    default_detail = "Could not satisfy the request Accept header."


class PayloadTooLarge(InvalidRequest):
    status_code = 413
    code = "request_too_large"
    default_detail = "Request body is too large."


class UnsupportedMediaType(InvalidRequest):
    status_code = 415
    code = "unsupported_media_type"


class Conflict(InvalidRequest):
    status_code = 409
    code = "conflict"


class AuthenticationError(AppError):
    status_code = 403
    type = "authentication_error"


class NotAuthenticated(AuthenticationError):
    code = "not_authenticated"
    default_detail = "Authentication credentials were not provided."


class AuthenticationFailed(AuthenticationError):
    code = "authentication_failed"
    default_detail = "Incorrect authentication credentials."


class PermissionDenied(AuthenticationError):
    code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class Throttled(AppError):
    status_code = 429
    type = "throttled_error"
    code = "throttled"
    default_detail = "Request was throttled."


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    default_detail = "A backend is unavailable, try again later."


class QueryTimeout(AppError):
    status_code = 504
    code = "query_timeout"
    default_detail = "The query took too long to run."


def error_response(exc: AppError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


# Pydantic error types → the validator codes PostHog's (DRF) API reports.
_PYDANTIC_CODES = {
    "missing": ("required", "This field is required."),
    "none_required": ("null", "This field may not be null."),
    "string_too_long": ("max_length", None),
    "string_type": ("invalid_input", "Not a valid string."),
    "int_parsing": ("invalid_input", "A valid integer is required."),
    "int_type": ("invalid_input", "A valid integer is required."),
    "int_from_float": ("invalid_input", "A valid integer is required."),
    "bool_parsing": ("invalid_input", "Must be a valid boolean."),
    "bool_type": ("invalid_input", "Must be a valid boolean."),
    "list_type": ("not_a_list", None),
    "too_long": ("max_length", None),
}


def _attr_from_loc(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # Pydantic names union members/function validators in the path; they are not fields.
    parts = [p for p in parts if not p.startswith(("function-", "tagged-union")) and "[" not in p]
    return "__".join(parts) or None


def validation_error_from_pydantic(errors: list[dict[str, Any]]) -> AppError:
    """Only the first error is reported (§1.6)."""
    if not errors:
        return ValidationFailed()
    err = errors[0]
    etype = err.get("type", "")
    if etype == "json_invalid":
        return ParseError(f"JSON parse error - {err.get('ctx', {}).get('error', 'invalid JSON')}")
    loc = tuple(err.get("loc", ()))
    attr = _attr_from_loc(loc)
    if etype == "model_attributes_type" or (etype == "dict_type" and attr is None):
        return ValidationFailed("Invalid data. Expected a dictionary.", code="invalid_input", attr=None)
    code, detail = _PYDANTIC_CODES.get(etype, ("invalid_input", None))
    ctx = err.get("ctx") or {}
    if code == "max_length" and "max_length" in ctx:
        detail = f"Ensure this field has no more than {ctx['max_length']} characters."
    if code == "not_a_list":
        detail = f'Expected a list of items but got type "{type(err.get("input")).__name__}".'
    if etype == "missing" or (etype.endswith("_type") and err.get("input") is None):
        code, detail = ("required", "This field is required.") if etype == "missing" else ("null", "This field may not be null.")
    if detail is None:
        msg = str(err.get("msg", "Invalid input."))
        detail = msg.removeprefix("Value error, ")
    return ValidationFailed(detail, code=code, attr=attr)


async def _app_error_handler(request: Request, exc: AppError) -> Response:
    if exc.status_code >= 500:
        log.error("request failed: %s", exc.detail, extra={"path": request.url.path})
    return error_response(exc)


async def _validation_handler(request: Request, exc: RequestValidationError) -> Response:
    return error_response(validation_error_from_pydantic(list(exc.errors())))


async def _http_exception_handler(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 404:
        err: AppError = NotFound()
    elif exc.status_code == 405:
        err = MethodNotAllowed(f'Method "{request.method}" not allowed.')
    elif exc.status_code == 413:
        err = PayloadTooLarge()
    elif exc.status_code == 415:
        err = UnsupportedMediaType(str(exc.detail))
    elif exc.status_code < 500:
        err = InvalidRequest(str(exc.detail), status_code=exc.status_code)
    else:
        err = AppError()
    if exc.headers:
        err.headers.update(exc.headers)
    return error_response(err)


def _bad_value_for_database(exc: Exception) -> AppError | None:
    """PostgreSQL data exceptions (SQLSTATE class 22) and asyncpg's refusals to bind a value are the
    client's input, not our failure: a NUL in a text field, an integer past a column's range."""
    import asyncpg

    cause = getattr(exc, "orig", None)
    cause = getattr(cause, "__cause__", None) or cause
    if not isinstance(cause, asyncpg.exceptions.DataError):
        return None
    if getattr(cause, "sqlstate", None) in ("22021", "22P05") or "0x00" in str(cause):
        return ValidationFailed("Text may not contain NUL (\\u0000) characters.")
    return ValidationFailed("A value is out of the supported range.")


async def _database_error_handler(request: Request, exc: Exception) -> Response:
    err = _bad_value_for_database(exc)
    if err is None:
        return await _unhandled_handler(request, exc)
    return error_response(err)


def _database_unavailable(exc: BaseException) -> bool:
    """PostgreSQL unreachable, restarting or shutting down: a 503 to retry, not a 500 bug. Connect
    failures reach us as the bare OSError asyncpg raised; broken connections and refusals as DBAPIErrors."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        cause = getattr(exc.orig, "__cause__", None) or exc.orig
        return isinstance(cause, (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                                  OSError))
    if isinstance(exc, OSError):
        frames = traceback.extract_tb(exc.__traceback__)
        return any(f"{os.sep}asyncpg{os.sep}" in frame.filename for frame in frames)
    return False


def unhandled_error(exc: BaseException, path: str | None) -> AppError:
    """The answer to an exception nothing translated: 503 when PostgreSQL is unreachable, else 500."""
    if _database_unavailable(exc):
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc, extra={"path": path})
        return ServiceUnavailable(headers={"Retry-After": "5"})
    log.exception("unhandled error", extra={"path": path})
    return AppError()


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    return error_response(unhandled_error(exc, request.url.path))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)  # type: ignore[arg-type]
    from sqlalchemy.exc import DBAPIError

    app.add_exception_handler(DBAPIError, _database_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error envelope."""
    from app.schemas.common import ErrorBody

    descriptions = {
        400: "Validation error", 401: "Not authenticated", 403: "Permission denied", 404: "Not found",
        405: "Method not allowed", 413: "Body too large", 415: "Unsupported media type",
        429: "Throttled", 503: "Backend unavailable", 504: "Query timeout",
    }
    return {code: {"model": ErrorBody, "description": descriptions.get(code, "Error")} for code in codes}

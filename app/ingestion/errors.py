"""Capture errors, rendered in the spec's envelope (INGESTION.md §6) by the app's one handler."""

from __future__ import annotations

from app.errors import AppError


class CaptureInvalid(AppError):
    status_code = 400
    type = "validation_error"
    code = "invalid_payload"


class CaptureTooLarge(AppError):
    status_code = 413
    type = "validation_error"
    code = "payload_too_large"


class CaptureUnauthorized(AppError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_token"


class CaptureUnavailable(AppError):
    status_code = 503
    type = "server_error"
    code = "storage_unavailable"
    default_detail = "Event storage is temporarily unavailable, retry later."
    RETRY_AFTER_SECONDS = 5

    def __init__(self, detail: str | None = None, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        # SDKs back off on Retry-After; without it a 503 is retried at once or dropped.
        self.headers.setdefault("Retry-After", str(self.RETRY_AFTER_SECONDS))

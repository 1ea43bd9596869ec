"""The one source of current time. `APP_FROZEN_NOW` (or `freeze()`) pins it."""

from __future__ import annotations

import os
from datetime import datetime, timezone

_frozen: datetime | None = None


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def freeze(at: datetime | str | None) -> None:
    """Pin `now()` to an instant (None unfreezes). Used by settings at startup and by tests."""
    global _frozen
    if isinstance(at, str):
        at = _parse(at)
    elif at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    _frozen = at.astimezone(timezone.utc) if at is not None else None


def frozen() -> datetime | None:
    """The pinned instant, or None while the clock runs."""
    if _frozen is not None:
        return _frozen
    env = os.environ.get("APP_FROZEN_NOW")
    return _parse(env) if env else None


def now() -> datetime:
    """Current instant, timezone-aware UTC."""
    pinned = frozen()
    return pinned if pinned is not None else datetime.now(timezone.utc)

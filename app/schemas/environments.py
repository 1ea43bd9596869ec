from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from app.schemas.query.properties import PropertyFilterList

_TIMEZONES = frozenset(available_timezones())


def iso_z(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a `Z` suffix (microseconds only when non-zero)."""
    if value is None:
        return None
    from datetime import timezone

    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _check_timezone(value: str | None) -> str | None:
    if value is not None and value not in _TIMEZONES:
        raise ValueError(f'"{value}" is not a valid choice.')
    return value


def _check_filters(value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    PropertyFilterList.model_validate({"filters": value})
    return value


class EnvironmentWrite(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, description="IANA time zone name, e.g. Europe/Berlin")
    week_start_day: int | None = Field(default=None, ge=0, le=1, description="0 Sunday, 1 Monday")
    test_account_filters: list[dict[str, Any]] | None = Field(
        default=None, description="Property filters that exclude internal and test users"
    )

    _tz = field_validator("timezone")(_check_timezone)
    _filters = field_validator("test_account_filters")(_check_filters)


class EnvironmentCreate(EnvironmentWrite):
    name: str = Field(min_length=1, max_length=200)


class EnvironmentUpdate(EnvironmentWrite):
    pass


class EnvironmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    uuid: uuid.UUID
    organization: uuid.UUID | None = None
    project_id: int
    name: str
    api_token: str
    timezone: str
    week_start_day: int | None
    test_account_filters: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime | None

    @field_serializer("created_at", "updated_at")
    def _ts(self, value: datetime | None) -> str | None:
        return iso_z(value)

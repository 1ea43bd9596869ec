from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

PropertyType = Literal["String", "Numeric", "Boolean", "DateTime", "Duration"]


class PropertyDefinitionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    type: Literal["event", "person", "group", "session"]
    property_type: PropertyType | None
    is_numerical: bool
    description: str | None = None
    tags: list[str] = []
    # PostHog sets it only when the request filters by `event_names`; null otherwise.
    is_seen_on_filtered_events: bool | None = None
    created_at: datetime
    updated_at: datetime


class PropertyDefinitionUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    property_type: PropertyType | None


class EventDefinitionRead(BaseModel):
    id: int
    name: str
    volume_30_day: int | None
    last_seen_at: datetime | None
    created_at: datetime
    description: str | None = None
    tags: list[str] = []

"""Request body of `POST /api/environments/{id}/query/` (the response is PostHog's query response)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Validated by the query engine (app.schemas.query.parse_query) so errors name JSON paths.
    query: dict[str, Any]
    client_query_id: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9_\-:.]{1,128}$")
    refresh: str | bool | None = None
    async_: bool | None = Field(default=None, alias="async")
    filters_override: dict[str, Any] | None = None
    variables_override: dict[str, Any] | None = None
    name: str | None = None

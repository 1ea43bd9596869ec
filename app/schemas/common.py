from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class ErrorBody(BaseModel):
    type: str
    code: str
    detail: str
    attr: str | None = None


class Paginated(BaseModel, Generic[T]):
    """Plain list pagination (spec/API.md §1.7)."""

    count: int
    next: str | None
    previous: str | None
    results: list[T]

"""API models of the Elements API (spec/API.md §2.2–2.9)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from app.models.element import ATTR_ID_MAX, CLASS_MAX, HREF_MAX, TAG_NAME_MAX, TEXT_MAX

INT_MAX = 2**31 - 1  # the PostgreSQL integer column


_NUL_DETAIL = "Null characters are not allowed."


def _coerce_str(value: Any) -> Any:
    # DRF's CharField takes numbers as their text but refuses booleans (`Not a valid string.`).
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and "\x00" in value:
        # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the driver.
        raise PydanticCustomError("null_characters_not_allowed", _NUL_DETAIL)
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _check_int(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise PydanticCustomError("int_type", "A valid integer is required.")
    if isinstance(value, str):
        text = value.strip()
        # DRF accepts "3.0"-style integral decimals written as text.
        if text.endswith(".0"):
            text = text.rstrip("0").rstrip(".")
        try:
            value = int(text)
        except ValueError:
            raise PydanticCustomError("int_parsing", "A valid integer is required.") from None
    if isinstance(value, int):
        if value > INT_MAX:
            raise PydanticCustomError("max_value", f"Ensure this value is less than or equal to {INT_MAX}.")
        if value < -INT_MAX - 1:
            raise PydanticCustomError("min_value", f"Ensure this value is greater than or equal to {-INT_MAX - 1}.")
    return value


def _check_attributes(value: Any) -> Any:
    if value is not None and not isinstance(value, dict):
        raise PydanticCustomError(
            "dict_type", 'Expected a dictionary of items but got type "{kind}".', {"kind": type(value).__name__}
        )
    if _has_nul(value):  # JSONB refuses \u0000 too
        raise PydanticCustomError("null_characters_not_allowed", _NUL_DETAIL)
    return value


def _text(max_length: int):
    # The length constraint sits on the `str` member: on the whole `str | None` it would be applied
    # to None too (a TypeError, i.e. a 500, for `{"text": null}`).
    return Annotated[Annotated[str, Field(max_length=max_length)] | None, BeforeValidator(_coerce_str),
                     Field(default=None)]


ClassName = Annotated[str, BeforeValidator(_coerce_str), Field(max_length=CLASS_MAX)]
OptionalInt = Annotated[int | None, BeforeValidator(_check_int), Field(default=None)]


class ElementWrite(BaseModel):
    """Body of POST/PATCH/PUT: any subset of the nine fields; unknown keys (and `id`) are ignored."""

    model_config = ConfigDict(extra="ignore")

    text: _text(TEXT_MAX)  # type: ignore[valid-type]
    tag_name: _text(TAG_NAME_MAX)  # type: ignore[valid-type]
    attr_class: list[ClassName] | None = None
    href: _text(HREF_MAX)  # type: ignore[valid-type]
    attr_id: _text(ATTR_ID_MAX)  # type: ignore[valid-type]
    nth_child: OptionalInt
    nth_of_type: OptionalInt
    # Not nullable; the dict check runs first so a list gets a clear message, None stays a `null` error.
    attributes: Annotated[dict[str, Any], BeforeValidator(_check_attributes)] = Field(default_factory=dict)
    order: OptionalInt


class ElementRead(BaseModel):
    """[Deviation] Q2: CRUD objects carry `id` besides PostHog's nine keys."""

    id: int
    text: str | None
    tag_name: str | None
    attr_class: list[str] | None
    href: str | None
    attr_id: str | None
    nth_child: int | None
    nth_of_type: int | None
    attributes: dict[str, Any]
    order: int | None


class StatsElement(BaseModel):
    """A parsed chain element: exactly PostHog's nine keys, no `id`."""

    text: str | None
    tag_name: str | None
    attr_class: list[str] | None
    href: str | None
    attr_id: str | None
    nth_child: int | None
    nth_of_type: int | None
    attributes: dict[str, str]
    order: int | None


class ElementStats(BaseModel):
    count: int
    hash: str = Field(description="Lowercase hex of cityHash64 of the raw chain (before attribute filtering)")
    type: str = Field(description="$autocapture, $rageclick or $dead_click")
    elements: list[StatsElement]


class ElementStatsPage(BaseModel):
    results: list[ElementStats]
    next: str | None
    previous: str | None


class ElementValue(BaseModel):
    name: str | None

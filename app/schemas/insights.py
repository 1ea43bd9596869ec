"""Request parsing for insight writes (spec/API.md §3.6).

Written by hand rather than as a Pydantic model because the contract fixes DRF's exact codes,
messages and field order, and reports only the first failing field."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.errors import ParseError, QueryError, ValidationFailed
from app.schemas.query import parse_query

MAX_TEXT = 400
TRUE_VALUES = {"t", "true", "y", "yes", "on", "1"}
FALSE_VALUES = {"f", "false", "n", "no", "off", "0"}
_INT_RE = re.compile(r"^-?\d+(\.0*)?$")


@dataclass
class InsightWrite:
    """Only the keys present in the body are in `values` (PATCH semantics)."""

    values: dict[str, Any] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.values


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise ValidationFailed("Not a valid string.", code="invalid_input", attr=name)
    text = str(value) if isinstance(value, (int, float)) else value
    if not isinstance(text, str):
        raise ValidationFailed("Not a valid string.", code="invalid_input", attr=name)
    if len(text) > MAX_TEXT:
        raise ValidationFailed(f"Ensure this field has no more than {MAX_TEXT} characters.", code="max_length", attr=name)
    return text


def parse_bool(name: str, value: Any, *, nullable: bool = False) -> bool | None:
    if value is None:
        if nullable:
            return None
        raise ValidationFailed("This field may not be null.", code="null", attr=name)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in TRUE_VALUES:
            return True
        if low in FALSE_VALUES:
            return False
    raise ValidationFailed("Must be a valid boolean.", code="invalid_input", attr=name)


def truthy(raw: str | None) -> bool:
    return raw is not None and raw.strip().lower() in {"1", "true", "t", "yes", "y", "on"}


def _order(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, bool) and isinstance(value, (int, float, str)) and _INT_RE.match(str(value).strip()):
        number = int(str(value).strip().split(".")[0])
        # The column's range, reported as Django's model validators word it.
        if number > 2**31 - 1:
            raise ValidationFailed(f"Ensure this value is less than or equal to {2**31 - 1}.", code="max_value",
                                   attr="order")
        if number < -(2**31):
            raise ValidationFailed(f"Ensure this value is greater than or equal to {-(2**31)}.", code="min_value",
                                   attr="order")
        return number
    raise ValidationFailed("A valid integer is required.", code="invalid_input", attr="order")


def _not_a_list(name: str, value: Any) -> ValidationFailed:
    return ValidationFailed(f'Expected a list of items but got type "{type(value).__name__}".',
                            code="not_a_list", attr=name)


def _query(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        if not value:
            raise ValidationFailed("Query must be a valid JSON object", code="invalid_input", attr="query")
        raise ParseError("Query must be a valid JSON object")
    try:
        parse_query(value)
    except QueryError as exc:
        # §3.6: an invalid query node is a parse error of the request, not a field error.
        raise ParseError(exc.detail) from None
    return value


def _filters(value: Any) -> dict:
    if value is None:
        raise ValidationFailed("This field may not be null.", code="null", attr="filters")
    if not isinstance(value, dict):
        raise ValidationFailed(f'Expected a dictionary of items but got type "{type(value).__name__}".',
                               code="not_a_dict", attr="filters")
    return value


def _dashboards(value: Any) -> list[int]:
    if value is None:
        raise ValidationFailed("This field may not be null.", code="null", attr="dashboards")
    if not isinstance(value, list):
        raise _not_a_list("dashboards", value)
    ids: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            if isinstance(item, str) and item.strip().isdigit():
                item = int(item.strip())
            else:
                raise ValidationFailed(f"Incorrect type. Expected pk value, received {type(item).__name__}.",
                                       code="incorrect_type", attr="dashboards")
        if item not in ids:
            ids.append(item)
    return ids


def normalize_tags(value: Any) -> list[str]:
    if value is None:
        raise ValidationFailed("This field may not be null.", code="null", attr="tags")
    if not isinstance(value, list):
        raise _not_a_list("tags", value)
    tags: list[str] = []
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ValidationFailed("Not a valid string.", code="invalid_input", attr=f"tags__{index}")
        tag = str(item).strip().lower()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _folder(value: Any) -> str:
    """A plain DRF CharField (blank allowed): not nullable and without a length limit."""
    if value is None:
        raise ValidationFailed("This field may not be null.", code="null", attr="_create_in_folder")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValidationFailed("Not a valid string.", code="invalid_input", attr="_create_in_folder")
    return str(value)


def parse_insight_body(body: Any) -> InsightWrite:
    """Validate the writable fields in DRF's declaration order; the first failure wins."""
    if not isinstance(body, dict):
        raise ValidationFailed("Invalid data. Expected a dictionary, but got {}.".format(type(body).__name__),
                               code="invalid_input", attr=None)
    out = InsightWrite()
    parsers = (
        ("name", lambda v: _text("name", v)),
        ("derived_name", lambda v: _text("derived_name", v)),
        ("filters", _filters),
        ("query", _query),
        ("order", _order),
        ("deleted", lambda v: parse_bool("deleted", v)),
        ("dashboards", _dashboards),
        ("description", lambda v: _text("description", v)),
        ("tags", normalize_tags),
        ("favorited", lambda v: parse_bool("favorited", v)),
        ("saved", lambda v: parse_bool("saved", v)),
        ("_create_in_folder", _folder),
    )
    for name, parse in parsers:
        if name in body:
            out.values[name] = parse(body[name])
    return out

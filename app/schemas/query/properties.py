"""Property filters of PostHog's query schema (names and enum values as PostHog's JSON schema)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator


class PropertyOperator(str, Enum):
    exact = "exact"
    is_not = "is_not"
    icontains = "icontains"
    not_icontains = "not_icontains"
    regex = "regex"
    not_regex = "not_regex"
    gt = "gt"
    gte = "gte"
    lt = "lt"
    lte = "lte"
    is_set = "is_set"
    is_not_set = "is_not_set"
    is_date_exact = "is_date_exact"
    is_date_before = "is_date_before"
    is_date_after = "is_date_after"
    between = "between"
    not_between = "not_between"
    min = "min"
    max = "max"
    in_ = "in"
    not_in = "not_in"
    is_cleaned_path_exact = "is_cleaned_path_exact"
    flag_evaluates_to = "flag_evaluates_to"
    semver_eq = "semver_eq"
    semver_neq = "semver_neq"
    semver_gt = "semver_gt"
    semver_gte = "semver_gte"
    semver_lt = "semver_lt"
    semver_lte = "semver_lte"
    semver_tilde = "semver_tilde"
    semver_caret = "semver_caret"
    semver_wildcard = "semver_wildcard"
    icontains_multi = "icontains_multi"
    not_icontains_multi = "not_icontains_multi"


PropertyValue = Union[str, int, float, bool, None, list[Union[str, int, float, bool]]]


class _Filter(BaseModel):
    """A filter's fields are all optional: one that cannot be applied (no key, or no value for an
    operator that needs one; `{}`) is ignored, i.e. true (spec §5.1)."""

    model_config = ConfigDict(extra="allow")

    key: str | None = None
    value: PropertyValue = None
    operator: PropertyOperator | None = None
    label: str | None = None


class EventPropertyFilter(_Filter):
    type: Literal["event"] = "event"


class PersonPropertyFilter(_Filter):
    type: Literal["person"]


class ElementPropertyFilter(_Filter):
    type: Literal["element"]
    key: Literal["tag_name", "text", "href", "selector"] | None = None  # type: ignore[assignment]


class SessionPropertyFilter(_Filter):
    type: Literal["session"]


class EventMetadataPropertyFilter(_Filter):
    type: Literal["event_metadata"]


class CohortPropertyFilter(_Filter):
    type: Literal["cohort"]
    key: Literal["id"] = "id"  # type: ignore[assignment]
    value: int | None = None  # type: ignore[assignment]
    operator: PropertyOperator | None = PropertyOperator.in_
    negation: bool | None = None  # legacy: true means not_in
    cohort_name: str | None = None


class GroupPropertyFilter(_Filter):
    type: Literal["group"]
    group_type_index: int | None = Field(default=None, ge=0, le=4)


class HogQLPropertyFilter(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["hogql"]
    key: str | None = None
    value: Any = None


class FeaturePropertyFilter(_Filter):
    type: Literal["feature"]


class DataWarehousePropertyFilter(_Filter):
    type: Literal["data_warehouse", "data_warehouse_person_property"]


_TAGS = {
    "event": EventPropertyFilter,
    "person": PersonPropertyFilter,
    "element": ElementPropertyFilter,
    "session": SessionPropertyFilter,
    "event_metadata": EventMetadataPropertyFilter,
    "cohort": CohortPropertyFilter,
    "group": GroupPropertyFilter,
    "hogql": HogQLPropertyFilter,
    "feature": FeaturePropertyFilter,
    "data_warehouse": DataWarehousePropertyFilter,
    "data_warehouse_person_property": DataWarehousePropertyFilter,
}


def _filter_tag(value: Any) -> str | None:
    """Filters without `type` are event filters, as in PostHog's legacy filters."""
    kind = value.get("type", "event") if isinstance(value, dict) else getattr(value, "type", None)
    if kind == "data_warehouse_person_property":
        return "data_warehouse"
    return kind if kind in _TAGS else None


AnyPropertyFilter = Annotated[
    Union[tuple(Annotated[cls, Tag(tag)] for tag, cls in _TAGS.items() if tag != "data_warehouse_person_property")],
    Discriminator(_filter_tag, custom_error_type="invalid_property_filter",
                  custom_error_message="Unknown property filter type"),
]


# Longest list of filters at one level (a query's `properties`, a series' `properties`, one group's
# `values`): far above what any real insight uses, low enough that a crafted query cannot make the
# compiler spend seconds before ClickHouse refuses it (issue 9, abuse limits).
MAX_FILTERS = 200


class PropertyFilterList(BaseModel):
    """Helper to validate a plain list of filters (e.g. an environment's test_account_filters). Stricter
    than a query, which ignores a filter without a key (§5.1): a stored filter list must not keep one."""

    filters: list[AnyPropertyFilter]

    @field_validator("filters")
    @classmethod
    def _keys(cls, filters: list[Any]) -> list[Any]:
        for i, item in enumerate(filters):
            if getattr(item, "key", None) is None:
                raise ValueError(f"filter {i} has no key")
        return filters


# --- groups of filters (AND/OR, nested to any depth) -------------------------------------------


class FilterLogicalOperator(str, Enum):
    AND = "AND"
    OR = "OR"


def _item_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if isinstance(kind, Enum):
        kind = kind.value
    return "group" if kind in ("AND", "OR") else "filter"


class PropertyGroupFilterValue(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: FilterLogicalOperator
    values: list["PropertyItem"] = Field(default_factory=list, max_length=MAX_FILTERS)


PropertyItem = Annotated[
    Union[Annotated[AnyPropertyFilter, Tag("filter")], Annotated[PropertyGroupFilterValue, Tag("group")]],
    Discriminator(_item_tag),
]


class PropertyGroupFilter(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: FilterLogicalOperator
    values: list[PropertyGroupFilterValue] = Field(default_factory=list, max_length=MAX_FILTERS)


def _properties_tag(value: Any) -> str:
    return "list" if isinstance(value, list) else "group"


# A query's global `properties`: a plain list (AND) or a group.
AnyProperties = Annotated[
    Union[Annotated[list[PropertyItem], Field(max_length=MAX_FILTERS), Tag("list")],
          Annotated[PropertyGroupFilter, Tag("group")]],
    Discriminator(_properties_tag),
]

PropertyGroupFilterValue.model_rebuild()

"""Series nodes (entities) of insight queries: EventsNode, ActionsNode, DataWarehouseNode, GroupNode."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

from app.schemas.query.base import Node
from app.schemas.query.properties import MAX_FILTERS, PropertyItem


class MathType(str, Enum):
    # BaseMathType
    total = "total"
    dau = "dau"
    weekly_active = "weekly_active"
    monthly_active = "monthly_active"
    unique_session = "unique_session"
    first_time_for_user = "first_time_for_user"
    first_matching_event_for_user = "first_matching_event_for_user"
    # PropertyMathType
    avg = "avg"
    sum = "sum"
    min = "min"
    max = "max"
    median = "median"
    p75 = "p75"
    p90 = "p90"
    p95 = "p95"
    p99 = "p99"
    # CountPerActorMathType
    avg_count_per_actor = "avg_count_per_actor"
    min_count_per_actor = "min_count_per_actor"
    max_count_per_actor = "max_count_per_actor"
    median_count_per_actor = "median_count_per_actor"
    p75_count_per_actor = "p75_count_per_actor"
    p90_count_per_actor = "p90_count_per_actor"
    p95_count_per_actor = "p95_count_per_actor"
    p99_count_per_actor = "p99_count_per_actor"
    # GroupMathType / HogQLMathType
    unique_group = "unique_group"
    hogql = "hogql"


class MathPropertyType(str, Enum):
    event_properties = "event_properties"
    person_properties = "person_properties"
    data_warehouse_person_properties = "data_warehouse_person_properties"


class RevenueCurrencyPropertyConfig(Node):
    property: str | None = None
    static: str | None = None


class EntityNode(Node):
    name: str | None = None
    custom_name: str | None = None
    math: MathType | None = None
    math_property: str | None = Field(default=None, max_length=400)
    math_property_type: MathPropertyType | None = None
    math_hogql: str | None = None
    math_group_type_index: int | None = Field(default=None, ge=0, le=4)
    math_multiplier: float | None = None
    math_property_revenue_currency: RevenueCurrencyPropertyConfig | None = None
    properties: list[PropertyItem] | None = Field(default=None, max_length=MAX_FILTERS)
    fixedProperties: list[PropertyItem] | None = Field(default=None, max_length=MAX_FILTERS)
    optionalInFunnel: bool | None = None
    response: dict[str, Any] | None = None


class EventsNode(EntityNode):
    kind: Literal["EventsNode"] = "EventsNode"
    event: str | None = Field(default=None, max_length=400)
    limit: int | None = None
    orderBy: list[str] | None = None


class ActionsNode(EntityNode):
    kind: Literal["ActionsNode"] = "ActionsNode"
    id: int


class DataWarehouseNode(EntityNode):
    kind: Literal["DataWarehouseNode"] = "DataWarehouseNode"
    id: str
    table_name: str
    id_field: str
    timestamp_field: str
    distinct_id_field: str
    dw_source_type: str | None = None


class GroupNode(EntityNode):
    """A series made of several nodes combined with OR/AND."""

    kind: Literal["GroupNode"] = "GroupNode"
    operator: Literal["OR", "AND"] = "OR"
    nodes: list[Annotated[Union[EventsNode, ActionsNode, DataWarehouseNode], Field(discriminator="kind")]]


def _series_tag(value: Any) -> str | None:
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


AnySeriesNode = Annotated[
    Union[
        Annotated[EventsNode, Tag("EventsNode")],
        Annotated[ActionsNode, Tag("ActionsNode")],
        Annotated[DataWarehouseNode, Tag("DataWarehouseNode")],
        Annotated[GroupNode, Tag("GroupNode")],
    ],
    Discriminator(_series_tag, custom_error_type="invalid_series", custom_error_message="Unknown series kind"),
]

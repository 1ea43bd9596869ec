"""PostHog's query schema, node for node (names and enum values as posthog/schema.py)."""

from app.schemas.query.base import (
    Breakdown, BreakdownFilter, BreakdownType, CompareFilter, DateRange, HogQLQueryModifiers, IntervalType,
    PersonsOnEventsMode,
)
from app.schemas.query.insights import (
    EventsQuery, FunnelsQuery, HogQLQuery, LifecycleQuery, PathsQuery, RetentionQuery, StickinessQuery,
)
from app.schemas.query.nodes import DataTableNode, DataVisualizationNode, InsightVizNode, parse_query
from app.schemas.query.properties import (
    AnyProperties, AnyPropertyFilter, PropertyFilterList, PropertyGroupFilter, PropertyGroupFilterValue,
    PropertyItem, PropertyOperator,
)
from app.schemas.query.series import ActionsNode, DataWarehouseNode, EventsNode, GroupNode, MathType
from app.schemas.query.trends import TOTAL_VALUE_DISPLAYS, ChartDisplayType, TrendsFilter, TrendsQuery

__all__ = [
    "ActionsNode", "AnyProperties", "AnyPropertyFilter", "Breakdown", "BreakdownFilter", "BreakdownType",
    "ChartDisplayType", "CompareFilter", "DataTableNode", "DataVisualizationNode", "DataWarehouseNode",
    "DateRange", "EventsNode", "EventsQuery", "FunnelsQuery", "GroupNode", "HogQLQuery", "HogQLQueryModifiers",
    "InsightVizNode", "IntervalType", "LifecycleQuery", "MathType", "PathsQuery", "PersonsOnEventsMode",
    "PropertyFilterList", "PropertyGroupFilter", "PropertyGroupFilterValue", "PropertyItem", "PropertyOperator",
    "RetentionQuery", "StickinessQuery", "TOTAL_VALUE_DISPLAYS", "TrendsFilter", "TrendsQuery", "parse_query",
]

"""Shared pieces of PostHog's query schema: date ranges, breakdowns, compare, modifiers.

Field names and enum values are PostHog's (posthog/schema.py). Unknown keys are tolerated on
input (`extra="allow"`): clients send many presentation-only keys.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Node(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class IntervalType(str, Enum):
    second = "second"
    minute = "minute"
    hour = "hour"
    day = "day"
    week = "week"
    month = "month"


class DateRange(Node):
    date_from: str | None = Field(default=None, max_length=200)
    date_to: str | None = Field(default=None, max_length=200)
    explicitDate: bool | None = False


class BreakdownType(str, Enum):
    cohort = "cohort"
    person = "person"
    event = "event"
    event_metadata = "event_metadata"
    group = "group"
    session = "session"
    hogql = "hogql"
    data_warehouse = "data_warehouse"
    data_warehouse_person_property = "data_warehouse_person_property"
    revenue_analytics = "revenue_analytics"


class MultipleBreakdownType(str, Enum):
    person = "person"
    event = "event"
    event_metadata = "event_metadata"
    group = "group"
    session = "session"
    hogql = "hogql"
    cohort = "cohort"
    revenue_analytics = "revenue_analytics"
    data_warehouse = "data_warehouse"
    data_warehouse_person_property = "data_warehouse_person_property"


class Breakdown(Node):
    type: MultipleBreakdownType | None = MultipleBreakdownType.event
    property: str | int
    normalize_url: bool | None = None
    group_type_index: int | None = Field(default=None, ge=0, le=4)
    histogram_bin_count: int | None = Field(default=None, ge=1, le=1000)


class BreakdownFilter(Node):
    breakdown: str | int | list[str | int] | None = None
    breakdown_type: BreakdownType | None = BreakdownType.event
    breakdown_limit: int | None = Field(default=None, ge=1, le=10000)
    breakdown_group_type_index: int | None = Field(default=None, ge=0, le=4)
    breakdown_normalize_url: bool | None = None
    breakdown_histogram_bin_count: int | None = Field(default=None, ge=1, le=1000)
    breakdown_hide_other_aggregation: bool | None = None
    breakdown_path_cleaning: bool | None = None
    breakdowns: list[Breakdown] | None = Field(default=None, max_length=3)


class CompareFilter(Node):
    compare: bool | None = False
    compare_to: str | None = Field(default=None, max_length=200)


class PersonsOnEventsMode(str, Enum):
    disabled = "disabled"
    person_id_no_override_properties_on_events = "person_id_no_override_properties_on_events"
    person_id_override_properties_on_events = "person_id_override_properties_on_events"
    person_id_override_properties_joined = "person_id_override_properties_joined"


class HogQLQueryModifiers(Node):
    bounceRateDurationSeconds: float | None = None
    bounceRatePageViewMode: Literal["count_pageviews", "uniq_urls", "uniq_page_screen_autocaptures"] | None = None
    convertToProjectTimezone: bool | None = None
    customChannelTypeRules: list[dict[str, Any]] | None = None
    dataWarehouseEventsModifiers: list[dict[str, Any]] | None = None
    debug: bool | None = None
    formatCsvAllowDoubleQuotes: bool | None = None
    inCohortVia: Literal["auto", "leftjoin", "subquery", "leftjoin_conjoined"] | None = None
    materializationMode: Literal["auto", "legacy_null_as_string", "legacy_null_as_null", "disabled"] | None = None
    optimizeJoinedFilters: bool | None = None
    optimizeProjections: bool | None = None
    personsArgMaxVersion: Literal["auto", "v1", "v2"] | None = None
    personsJoinMode: Literal["inner", "left"] | None = None
    personsOnEventsMode: PersonsOnEventsMode | None = None
    propertyGroupsMode: Literal["enabled", "disabled", "optimized"] | None = None
    s3TableUseInvalidColumns: bool | None = None
    sessionTableVersion: Literal["auto", "v1", "v2", "v3"] | None = None
    sessionsV2JoinMode: Literal["string", "uuid"] | None = None
    timings: bool | None = None
    useMaterializedViews: bool | None = None
    usePresortedEventsTable: bool | None = None


class ConversionGoal(Node):
    actionId: int | None = None
    customEventName: str | None = None


class QueryBase(Node):
    """Fields every query node carries."""

    modifiers: HogQLQueryModifiers | None = None
    response: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    version: float | None = None

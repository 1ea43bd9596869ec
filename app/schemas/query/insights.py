"""Shapes of the other insight kinds; their engines come later, so only the schema is here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.schemas.query.base import BreakdownFilter, CompareFilter, IntervalType, Node, QueryBase
from app.schemas.query.series import AnySeriesNode, EventsNode
from app.schemas.query.trends import InsightQueryBase


class FunnelExclusion(Node):
    kind: str | None = None
    event: str | None = None
    id: int | None = None
    funnelFromStep: int
    funnelToStep: int


class FunnelsFilter(Node):
    binCount: int | None = None
    breakdownAttributionType: Literal["first_touch", "last_touch", "all_events", "step"] | None = "first_touch"
    breakdownAttributionValue: int | None = None
    exclusions: list[FunnelExclusion] | None = None
    funnelAggregateByHogQL: str | None = None
    funnelFromStep: int | None = None
    funnelOrderType: Literal["strict", "unordered", "ordered"] | None = "ordered"
    funnelStepReference: Literal["total", "previous"] | None = "total"
    funnelToStep: int | None = None
    funnelVizType: Literal["steps", "time_to_convert", "trends"] | None = "steps"
    funnelWindowInterval: int | None = 14
    funnelWindowIntervalUnit: Literal["second", "minute", "hour", "day", "week", "month"] | None = "day"
    hiddenLegendBreakdowns: list[str] | None = None
    layout: Literal["horizontal", "vertical"] | None = None
    useUdf: bool | None = None


class FunnelsQuery(InsightQueryBase):
    kind: Literal["FunnelsQuery"] = "FunnelsQuery"
    series: list[AnySeriesNode]
    interval: IntervalType | None = None
    breakdownFilter: BreakdownFilter | None = None
    funnelsFilter: FunnelsFilter | None = None


class RetentionEntity(Node):
    id: str | int | None = None
    kind: Literal["ActionsNode", "EventsNode"] | None = None
    name: str | None = None
    type: Literal["events", "actions"] | None = None
    order: int | None = None
    uuid: str | None = None
    custom_name: str | None = None
    properties: list[Any] | None = None


class RetentionFilter(Node):
    cumulative: bool | None = None
    meanRetentionCalculation: Literal["simple", "weighted", "none"] | None = None
    minimumOccurrences: int | None = None
    period: Literal["Hour", "Day", "Week", "Month"] | None = "Day"
    retentionReference: Literal["total", "previous"] | None = None
    retentionType: Literal[
        "retention_recurring", "retention_first_time", "retention_first_ever_occurrence"
    ] | None = None
    returningEntity: RetentionEntity | None = None
    targetEntity: RetentionEntity | None = None
    totalIntervals: int | None = 8
    timeWindowMode: Literal["strict_calendar_dates", "24_hour_windows"] | None = None
    showTrendLines: bool | None = None
    display: str | None = None
    aggregationType: str | None = None
    aggregationProperty: str | None = None
    retentionCustomBrackets: list[float] | None = None


class RetentionQuery(InsightQueryBase):
    kind: Literal["RetentionQuery"] = "RetentionQuery"
    breakdownFilter: BreakdownFilter | None = None
    retentionFilter: RetentionFilter = Field(default_factory=RetentionFilter)


class StickinessCriteria(Node):
    operator: Literal["gte", "lte", "exact"]
    value: int


class StickinessFilter(Node):
    computedAs: Literal["non_cumulative", "cumulative"] | None = None
    display: str | None = None
    hiddenLegendIndexes: list[int] | None = None
    showLegend: bool | None = None
    showMultipleYAxes: bool | None = None
    showValuesOnSeries: bool | None = None
    stickinessCriteria: StickinessCriteria | None = None


class StickinessQuery(InsightQueryBase):
    kind: Literal["StickinessQuery"] = "StickinessQuery"
    series: list[AnySeriesNode]
    interval: IntervalType | None = IntervalType.day
    intervalCount: int | None = None
    compareFilter: CompareFilter | None = None
    stickinessFilter: StickinessFilter | None = None


class LifecycleFilter(Node):
    showLegend: bool | None = None
    showValuesOnSeries: bool | None = None
    stacked: bool | None = None
    toggledLifecycles: list[Literal["new", "resurrecting", "returning", "dormant"]] | None = None


class LifecycleQuery(InsightQueryBase):
    kind: Literal["LifecycleQuery"] = "LifecycleQuery"
    series: list[AnySeriesNode]
    interval: IntervalType | None = IntervalType.day
    lifecycleFilter: LifecycleFilter | None = None


class PathsFilter(Node):
    edgeLimit: int | None = 50
    endPoint: str | None = None
    excludeEvents: list[str] | None = None
    includeEventTypes: list[Literal["$pageview", "$screen", "custom_event", "hogql"]] | None = None
    localPathCleaningFilters: list[dict[str, Any]] | None = None
    maxEdgeWeight: int | None = None
    minEdgeWeight: int | None = None
    pathDropoffKey: str | None = None
    pathEndKey: str | None = None
    pathGroupings: list[str] | None = None
    pathReplacements: bool | None = None
    pathStartKey: str | None = None
    pathsHogQLExpression: str | None = None
    startPoint: str | None = None
    stepLimit: int | None = 5


class FunnelPathsFilter(Node):
    funnelPathType: Literal["funnel_path_before_step", "funnel_path_between_steps", "funnel_path_after_step"] | None = None
    funnelSource: FunnelsQuery
    funnelStep: int | None = None


class PathsQuery(InsightQueryBase):
    kind: Literal["PathsQuery"] = "PathsQuery"
    pathsFilter: PathsFilter = Field(default_factory=PathsFilter)
    funnelPathsFilter: FunnelPathsFilter | None = None


class HogQLQuery(QueryBase):
    kind: Literal["HogQLQuery"] = "HogQLQuery"
    query: str
    filters: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    variables: dict[str, Any] | None = None
    explain: bool | None = None
    name: str | None = None


class EventsQuery(QueryBase):
    kind: Literal["EventsQuery"] = "EventsQuery"
    select: list[str]
    where: list[str] | None = None
    event: str | None = None
    actionId: int | None = None
    after: str | None = None
    before: str | None = None
    filterTestAccounts: bool | None = None
    fixedProperties: list[Any] | None = None
    properties: list[Any] | None = None
    limit: int | None = None
    offset: int | None = None
    orderBy: list[str] | None = None
    personId: str | None = None


__all__ = [
    "EventsNode", "EventsQuery", "FunnelsQuery", "HogQLQuery", "LifecycleQuery", "PathsQuery",
    "RetentionQuery", "StickinessQuery",
]

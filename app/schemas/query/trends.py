"""TrendsQuery and its trendsFilter (posthog/schema.py names)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import Field

from app.schemas.query.base import (
    BreakdownFilter, CompareFilter, ConversionGoal, DateRange, IntervalType, Node, QueryBase,
)
from app.schemas.query.properties import AnyProperties
from app.schemas.query.series import AnySeriesNode


class ChartDisplayType(str, Enum):
    ActionsLineGraph = "ActionsLineGraph"
    ActionsBar = "ActionsBar"
    ActionsUnstackedBar = "ActionsUnstackedBar"
    ActionsStackedBar = "ActionsStackedBar"
    ActionsAreaGraph = "ActionsAreaGraph"
    ActionsLineGraphCumulative = "ActionsLineGraphCumulative"
    BoldNumber = "BoldNumber"
    ActionsPie = "ActionsPie"
    ActionsBarValue = "ActionsBarValue"
    ActionsTable = "ActionsTable"
    WorldMap = "WorldMap"
    CalendarHeatmap = "CalendarHeatmap"


TOTAL_VALUE_DISPLAYS = frozenset({
    ChartDisplayType.BoldNumber, ChartDisplayType.ActionsPie, ChartDisplayType.ActionsBarValue,
    ChartDisplayType.ActionsTable, ChartDisplayType.WorldMap, ChartDisplayType.CalendarHeatmap,
})


class TrendsFormulaNode(Node):
    formula: str = Field(max_length=1000)
    custom_name: str | None = None


class GoalLine(Node):
    label: str
    value: float
    borderColor: str | None = None
    displayLabel: bool | None = None
    displayIfCrossed: bool | None = None
    position: Literal["start", "end"] | None = None


class TrendsFilter(Node):
    aggregationAxisFormat: Literal[
        "numeric", "duration", "duration_ms", "percentage", "percentage_scaled", "currency", "short"
    ] | None = None
    aggregationAxisPostfix: str | None = None
    aggregationAxisPrefix: str | None = None
    breakdown_histogram_bin_count: int | None = Field(default=None, ge=1, le=1000)
    confidenceLevel: float | None = None
    decimalPlaces: float | None = None
    detailedResultsAggregationType: Literal["total", "average", "median"] | None = None
    display: ChartDisplayType | None = ChartDisplayType.ActionsLineGraph
    formula: str | None = Field(default=None, max_length=1000)
    formulaNodes: list[TrendsFormulaNode] | None = Field(default=None, max_length=50)
    formulas: list[Annotated[str, Field(max_length=1000)]] | None = Field(default=None, max_length=50)
    goalLines: list[GoalLine] | None = None
    hiddenLegendIndexes: list[int] | None = None
    minDecimalPlaces: float | None = None
    movingAverageIntervals: float | None = None
    resultCustomizationBy: Literal["value", "position"] | None = None
    resultCustomizations: dict[str, Any] | None = None
    showAlertThresholdLines: bool | None = None
    showConfidenceIntervals: bool | None = None
    showLabelsOnSeries: bool | None = None
    showLegend: bool | None = None
    showMovingAverage: bool | None = None
    showMultipleYAxes: bool | None = None
    showPercentStackView: bool | None = None
    showTrendLines: bool | None = None
    showValuesOnSeries: bool | None = None
    smoothingIntervals: int | None = Field(default=1, ge=1, le=1000)
    yAxisScaleType: Literal["log10", "linear"] | None = None


class InsightQueryBase(QueryBase):
    dateRange: DateRange | None = None
    filterTestAccounts: bool | None = False
    properties: AnyProperties | None = None
    aggregation_group_type_index: int | None = Field(default=None, ge=0, le=4)
    samplingFactor: float | None = Field(default=None, gt=0, le=1)
    dataColorTheme: float | None = None


class TrendsQuery(InsightQueryBase):
    kind: Literal["TrendsQuery"] = "TrendsQuery"
    series: list[AnySeriesNode] = Field(max_length=50)
    interval: IntervalType | None = IntervalType.day
    breakdownFilter: BreakdownFilter | None = None
    compareFilter: CompareFilter | None = None
    trendsFilter: TrendsFilter | None = None
    conversionGoal: ConversionGoal | None = None

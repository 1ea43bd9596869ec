"""API models of insight analysis and suggestions (spec/API.md §3.11–§3.12).

`InsightAnalysis` is the structured fact sheet the text is written from; every number in the text
comes from it, which is also what lets us check a language model's rewrite (app/services/llm.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class PeriodValue(BaseModel):
    day: str  # the bucket as the result's `days` gives it (project timezone)
    label: str  # the result's display label, used in the text
    value: float


class Anomaly(PeriodValue):
    rolling_median: float
    robust_deviations: float  # |value − rolling median| / (1.4826 · MAD), signed by direction
    direction: Literal["above", "below"]


class Contributor(BaseModel):
    breakdown_value: Any
    label: str
    first: float
    last: float
    change: float
    share_of_change: float | None  # change / the series' change; None when the series did not change


class CompareDelta(BaseModel):
    current: float
    previous: float
    change: float
    change_pct: float | None
    periods: int  # complete periods compared (the incomplete current one is left out of both sides)
    basis: Literal["sum", "average"] = "sum"  # averages for math that does not add up (unique users, …)


class SeriesFacts(BaseModel):
    name: str
    order: int
    is_formula: bool = False
    breakdown_rows: int = 0
    # time series
    periods: int = 0
    complete_periods: int = 0
    additive: bool = True  # False for math whose period values do not add up (dau, averages, formulas)
    total: float | None = None  # sum over the complete periods (total-value displays: the aggregated value)
    mean: float | None = None  # average per complete period
    first: PeriodValue | None = None
    last: PeriodValue | None = None
    change: float | None = None
    change_pct: float | None = None
    direction: Literal["up", "down", "flat", "unknown"] = "unknown"
    peak: PeriodValue | None = None
    trough: PeriodValue | None = None
    anomalies: list[Anomaly] = Field(default_factory=list)
    incomplete: PeriodValue | None = None
    contributors: list[Contributor] = Field(default_factory=list)
    compare: CompareDelta | None = None


class InsightAnalysis(BaseModel):
    kind: str
    display: str | None = None
    interval: str | None = None
    supported: bool = True
    headline: str = ""
    bullets: list[str] = Field(default_factory=list)
    takeaway: str = ""
    series: list[SeriesFacts] = Field(default_factory=list)
    text_source: Literal["deterministic", "llm"] = "deterministic"


class AnalyzeRead(BaseModel):
    result: str
    analysis: InsightAnalysis | None = None


class SuggestionsBody(BaseModel):
    """`context` may steer the ranking; it is matched as plain text and never executed."""

    context: str | None = Field(default=None, max_length=10_000)


class SuggestionRead(BaseModel):
    title: str
    description: str | None
    targetQuery: dict[str, Any]

"""`GET insights/{id}/analyze/` (spec/API.md §3.11): a deterministic written analysis of a result.

Facts first (`trends_facts`, pure functions over the trends result of QUERY_ENGINE.md §10), then a
text made only from those facts (`render`). A language model may rewrite the text (app/services/llm.py)
but never replaces the facts. Kinds the engine cannot run yet say so instead of guessing.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.errors import QueryError
from app.models import Environment, Insight, Organization
from app.schemas.insight_analysis import (
    AnalyzeRead, Anomaly, CompareDelta, Contributor, InsightAnalysis, PeriodValue, SeriesFacts,
)
from app.schemas.query import TOTAL_VALUE_DISPLAYS, ChartDisplayType, InsightVizNode, TrendsQuery, parse_query
from app.services import insight_cache as cache
from app.services import llm
from app.services.query_runner import Item, QueryRunner
from app.settings import Settings

FLAT_BELOW = 0.05  # a relative change under 5% reads as "flat"
ANOMALY_DEVIATIONS = 3.0
WINDOW = 3  # neighbours on each side of the rolling median
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution → its standard deviation
NULL, OTHER = "$$_posthog_breakdown_null_$$", "$$_posthog_breakdown_other_$$"
ADDITIVE_MATH = {"total", "sum"}  # period values of these add up to the value of the whole range
MATH_WORDS = {"dau": "unique users", "weekly_active": "weekly active users", "monthly_active": "monthly active users",
              "unique_session": "unique sessions", "unique_group": "unique groups"}
KIND_NAMES = {"FunnelsQuery": "Funnel", "RetentionQuery": "Retention", "StickinessQuery": "Stickiness",
              "LifecycleQuery": "Lifecycle", "PathsQuery": "Paths"}


# -- numbers ------------------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def fmt_pct(ratio: float) -> str:
    pct = round(ratio * 100, 1)
    text = f"{abs(pct):,.1f}".removesuffix(".0")
    return f"{'+' if pct > 0 else '-' if pct < 0 else '+'}{text}%"


def signed(value: float) -> str:
    return f"+{fmt(value)}" if value >= 0 else f"-{fmt(-value)}"


def _rel(first: float, last: float) -> float | None:
    return (last - first) / abs(first) if first else None


def _direction(first: float, last: float) -> str:
    rel = _rel(first, last)
    if rel is None:
        return "flat" if last == first else ("up" if last > first else "down")
    return "flat" if abs(rel) < FLAT_BELOW else ("up" if rel > 0 else "down")


# -- periods ------------------------------------------------------------------------------------------
def _step(start: datetime, interval: str) -> datetime:
    if interval == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "week": timedelta(days=7),
                    "second": timedelta(seconds=1)}.get(interval, timedelta(days=1))


def period_states(days: list[str], interval: str, timezone: str) -> list[str]:
    """"complete", "incomplete" (the bucket holding now, in the project timezone) or "future" per bucket."""
    now = clock.now().astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    starts = [datetime.fromisoformat(d) for d in days]
    states = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else _step(start, interval)
        states.append("complete" if end <= now else "future" if start > now else "incomplete")
    return states


def anomalies(values: list[float]) -> list[tuple[int, float, float]]:
    """(index, rolling median, signed robust deviations) of points more than 3 robust deviations from
    the median of their neighbours. The scale has floors (10% of the median, the series' own MAD) so a
    perfectly even neighbourhood does not turn a one-unit wiggle into an "anomaly"."""
    if len(values) < 5:
        return []
    series_mad = statistics.median(abs(v - statistics.median(values)) for v in values)
    out = []
    for i, value in enumerate(values):
        neighbours = values[max(0, i - WINDOW):i] + values[i + 1:i + 1 + WINDOW]
        if len(neighbours) < 3:
            continue
        med = statistics.median(neighbours)
        mad = statistics.median(abs(v - med) for v in neighbours)
        scale = max(MAD_TO_SIGMA * mad, 0.1 * abs(med), MAD_TO_SIGMA * series_mad) or 0.1
        deviations = (value - med) / scale
        if abs(deviations) > ANOMALY_DEVIATIONS:
            out.append((i, med, round(deviations, 1)))
    return out


# -- facts ---------------------------------------------------------------------------------------------
def _series_values(row: dict, cumulative: bool) -> list[float]:
    data = [float(v or 0) for v in row.get("data") or []]
    if cumulative:  # analyse per-period values: differences of the running sum
        return [v - (data[i - 1] if i else 0.0) for i, v in enumerate(data)]
    return data


def _bv_label(value: Any) -> str:
    items = value if isinstance(value, list) else [value]
    names = ["None" if v == NULL else "Other" if v == OTHER else str(v) for v in items]
    return "::".join(names)


def _group(results: list[dict]) -> dict[tuple, list[dict]]:
    """Rows by (order, is formula, compare label); breakdown rows of one series share a group."""
    groups: dict[tuple, list[dict]] = {}
    for row in results:
        key = (row.get("order") or 0, row.get("action") is None, row.get("compare_label") or "current")
        groups.setdefault(key, []).append(row)
    return groups


def _name(rows: list[dict], q: TrendsQuery) -> str:
    row = rows[0]
    action = row.get("action")
    if action:
        return action.get("custom_name") or action.get("name") or "All events"
    if "breakdown_value" not in row:
        return row.get("label") or "Formula"
    from app.query_engine.trends.results import formulas

    listed = formulas(q)
    order = row.get("order") or 0
    if order < len(listed):
        return listed[order][1] or f"Formula ({listed[order][0]})"
    return "Formula"


def _pv(days: list[str], labels: list[str], values: list[float], i: int) -> PeriodValue:
    return PeriodValue(day=days[i], label=labels[i] if i < len(labels) else days[i], value=values[i])


def _summed(rows: list[dict], cumulative: bool) -> list[float]:
    per_row = [_series_values(r, cumulative) for r in rows]
    width = max((len(v) for v in per_row), default=0)
    return [sum(v[i] for v in per_row if i < len(v)) for i in range(width)]


def time_series_facts(rows: list[dict], previous: list[dict] | None, *, name: str, order: int, is_formula: bool,
                      interval: str, timezone: str, cumulative: bool, additive: bool = True) -> SeriesFacts:
    facts = SeriesFacts(name=name, order=order, is_formula=is_formula, additive=additive,
                        breakdown_rows=sum(1 for r in rows if "breakdown_value" in r))
    days, labels = list(rows[0].get("days") or []), list(rows[0].get("labels") or [])
    values = _summed(rows, cumulative)
    states = period_states(days, interval, timezone)
    complete = [i for i, s in enumerate(states) if s == "complete"]
    facts.periods, facts.complete_periods = len(values), len(complete)
    current = next((i for i, s in enumerate(states) if s == "incomplete"), None)
    if current is not None:
        facts.incomplete = _pv(days, labels, values, current)
    if not complete:
        return facts
    first, last = complete[0], complete[-1]
    cvals = [values[i] for i in complete]
    facts.total = sum(cvals)
    facts.mean = round(facts.total / len(cvals), 2)
    facts.first, facts.last = _pv(days, labels, values, first), _pv(days, labels, values, last)
    facts.change = values[last] - values[first]
    facts.change_pct = _rel(values[first], values[last])
    facts.direction = _direction(values[first], values[last]) if last != first else "unknown"
    peak = max(complete, key=lambda i: (values[i], -i))
    trough = min(complete, key=lambda i: (values[i], i))
    facts.peak, facts.trough = _pv(days, labels, values, peak), _pv(days, labels, values, trough)
    for j, med, dev in anomalies(cvals):
        i = complete[j]
        facts.anomalies.append(Anomaly(**_pv(days, labels, values, i).model_dump(), rolling_median=med,
                                       robust_deviations=dev, direction="above" if dev > 0 else "below"))
    if facts.breakdown_rows and last != first:
        contribs = []
        for row in rows:
            v = _series_values(row, cumulative)
            if len(v) <= last:
                continue
            change = v[last] - v[first]
            contribs.append(Contributor(
                breakdown_value=row.get("breakdown_value"), label=_bv_label(row.get("breakdown_value")),
                first=v[first], last=v[last], change=change,
                share_of_change=round(change / facts.change, 4) if facts.change else None))
        contribs.sort(key=lambda c: (-abs(c.change), c.label))
        facts.contributors = [c for c in contribs if c.change][:3]
    if previous:
        prev = _summed(previous, cumulative)
        both = [i for i in complete if i < len(prev)]
        cur, old = sum(values[i] for i in both), sum(prev[i] for i in both)
        if not additive and both:  # a sum of daily unique users counts people twice; compare averages
            cur, old = round(cur / len(both), 2), round(old / len(both), 2)
        facts.compare = CompareDelta(current=cur, previous=old, change=round(cur - old, 2), change_pct=_rel(old, cur),
                                     periods=len(both), basis="sum" if additive else "average")
    return facts


def total_value_facts(rows: list[dict], previous: list[dict] | None, *, name: str, order: int,
                      is_formula: bool) -> SeriesFacts:
    facts = SeriesFacts(name=name, order=order, is_formula=is_formula,
                        breakdown_rows=sum(1 for r in rows if "breakdown_value" in r))
    # Summing breakdown rows is exact for counts; for distinct-actor math it is an upper bound.
    facts.total = sum(float(r.get("aggregated_value") or 0) for r in rows)
    if facts.breakdown_rows:
        ranked = sorted(rows, key=lambda r: (-float(r.get("aggregated_value") or 0), _bv_label(r.get("breakdown_value"))))
        facts.contributors = [Contributor(
            breakdown_value=r.get("breakdown_value"), label=_bv_label(r.get("breakdown_value")), first=0.0,
            last=float(r.get("aggregated_value") or 0), change=float(r.get("aggregated_value") or 0),
            share_of_change=round(float(r.get("aggregated_value") or 0) / facts.total, 4) if facts.total else None,
        ) for r in ranked[:3]]
    if previous:
        prev = sum(float(r.get("aggregated_value") or 0) for r in previous)
        facts.compare = CompareDelta(current=facts.total, previous=prev, change=facts.total - prev,
                                     change_pct=_rel(prev, facts.total), periods=1)
    return facts


def trends_facts(q: TrendsQuery, results: list[dict], *, timezone: str) -> InsightAnalysis:
    display = (q.trendsFilter.display if q.trendsFilter and q.trendsFilter.display else None) or ChartDisplayType.ActionsLineGraph
    total_value = display in TOTAL_VALUE_DISPLAYS
    interval = "day" if total_value else (q.interval.value if q.interval else "day")
    analysis = InsightAnalysis(kind="TrendsQuery", display=display.value, interval=interval)
    groups = _group(results)
    for (order, is_formula, label), rows in groups.items():
        if label == "previous":
            continue
        previous = groups.get((order, is_formula, "previous"))
        name = _name(rows, q)
        node = q.series[order] if not is_formula and order < len(q.series) else None
        additive = node is not None and (node.math is None or node.math.value in ADDITIVE_MATH)
        if node is not None and node.math is not None and node.math.value != "total":
            name = f"{name} ({MATH_WORDS.get(node.math.value, node.math.value.replace('_', ' '))})"
        if total_value:
            facts = total_value_facts(rows, previous, name=name, order=order, is_formula=is_formula)
        else:
            facts = time_series_facts(rows, previous, name=name, order=order, is_formula=is_formula, interval=interval,
                                      timezone=timezone, cumulative=display == ChartDisplayType.ActionsLineGraphCumulative,
                                      additive=additive)
        analysis.series.append(facts)
    render(analysis)
    return analysis


# -- text ---------------------------------------------------------------------------------------------
def _headline_part(s: SeriesFacts) -> str:
    if s.first is None or s.last is None:
        return f"{s.name} has no complete period yet"
    if s.complete_periods < 2:
        return f"{s.name} was {fmt(s.last.value)} on {s.last.label}, the only complete period, so there is no trend yet"
    span = f"{fmt(s.first.value)} on {s.first.label} to {fmt(s.last.value)} on {s.last.label}"
    if s.direction == "flat":
        pct = f" ({fmt_pct(s.change_pct)})" if s.change_pct is not None else ""
        return f"{s.name} was flat{pct}: {fmt(s.first.value)} on {s.first.label}, {fmt(s.last.value)} on {s.last.label}"
    verb = "rose" if s.direction == "up" else "fell"
    size = f" {fmt_pct(s.change_pct).lstrip('+-')}" if s.change_pct is not None else ""
    return f"{s.name} {verb}{size} from {span}"


def _bullets(s: SeriesFacts, total_value: bool) -> list[str]:
    candidates: list[tuple[int, str]] = []  # (priority, text), kept in reading order
    if not total_value and s.peak and s.trough and s.complete_periods >= 2:
        candidates.append((3, f"Peak: {fmt(s.peak.value)} on {s.peak.label}; lowest: {fmt(s.trough.value)} on {s.trough.label}."))
    for a in s.anomalies[:2]:
        candidates.append((0, f"Unusual period: {fmt(a.value)} on {a.label} is {fmt(abs(a.robust_deviations))} robust "
                              f"deviations {a.direction} the rolling median of {fmt(a.rolling_median)}."))
    if s.contributors:
        if total_value:
            parts = [f"{c.label} {fmt(c.last)}" + (f" ({fmt(round(c.share_of_change * 100, 1))}%)" if c.share_of_change is not None else "")
                     for c in s.contributors]
            candidates.append((1, "Largest breakdown values: " + ", ".join(parts) + "."))
        else:
            parts = [f"{c.label} {signed(c.change)}" for c in s.contributors]
            candidates.append((1, f"Largest contributors to the change ({signed(s.change or 0)}): " + ", ".join(parts) + "."))
    if s.compare:
        c = s.compare
        pct = f" ({fmt_pct(c.change_pct)})" if c.change_pct is not None else ""
        per = " (average per period)" if c.basis == "average" else ""
        candidates.append((2, f"Compared with the previous period{per}: {fmt(c.current)} vs {fmt(c.previous)}{pct}."))
    keep = sorted(range(len(candidates)), key=lambda i: (candidates[i][0], i))[:3]
    bullets = [candidates[i][1] for i in sorted(keep)]
    if len(bullets) < 2 and s.total is not None and not total_value:
        if s.additive:
            bullets.append(f"Total over the {s.complete_periods} complete periods: {fmt(s.total)}.")
        else:
            bullets.append(f"Average over the {s.complete_periods} complete periods: {fmt(s.mean)}.")
    return bullets


def _takeaway(s: SeriesFacts, total_value: bool) -> str:
    if total_value:
        if s.compare and s.compare.change_pct is not None and abs(s.compare.change_pct) >= FLAT_BELOW:
            word = "up" if s.compare.change > 0 else "down"
            return f"{s.name} is {word} {fmt_pct(s.compare.change_pct).lstrip('+-')} on the previous period; a line graph shows when the change happened."
        return "This is a single total; a line graph of the same query shows how it changes over time."
    if s.first is None or s.complete_periods < 2:
        return "There are not enough complete periods to judge a trend yet; widen the date range or wait for more data."
    if s.anomalies:
        a = s.anomalies[0]
        return f"Check what happened on {a.label} first: that period is far outside the usual range and distorts the trend."
    top = s.contributors[0] if s.contributors else None
    if s.direction == "down":
        if top:
            return f"The drop comes mostly from {top.label} ({signed(top.change)}); start the investigation there."
        return f"Look for releases, tracking changes or campaigns that ended around {s.last.label} to explain the drop."
    if s.direction == "up":
        if top:
            return f"The growth comes mostly from {top.label} ({signed(top.change)}); check whether it holds in the next periods."
        return "The trend is up; check whether the growth holds over the next periods."
    return "No meaningful change; nothing needs attention unless you expected movement."


def render(analysis: InsightAnalysis) -> None:
    total_value = analysis.display in {d.value for d in TOTAL_VALUE_DISPLAYS}
    series = analysis.series
    if not series:
        analysis.headline = "No data: the insight returned no results for its date range."
        analysis.takeaway = "Check the date range and filters, or whether the events are being sent."
        return
    main = max(series, key=lambda s: abs(s.change_pct or 0) if s.change_pct is not None else 0) if len(series) > 1 else series[0]
    if total_value:
        parts = []
        for s in series[:3]:
            text = f"{s.name}: {fmt(s.total)}"
            if s.compare and s.compare.change_pct is not None:
                text += f" ({fmt_pct(s.compare.change_pct)} on the previous period)"
            parts.append(text)
        analysis.headline = "; ".join(parts) + "."
    else:
        analysis.headline = "; ".join(_headline_part(s) for s in series[:3]) + "."
        if main.incomplete is not None:
            analysis.headline += (f" {main.incomplete.label} is still in progress ({fmt(main.incomplete.value)} so far)"
                                  " and is not counted as a change.")
    analysis.bullets = _bullets(main, total_value)
    analysis.takeaway = _takeaway(main, total_value)


def as_text(analysis: InsightAnalysis) -> str:
    lines = [analysis.headline, *(f"- {b}" for b in analysis.bullets)]
    if analysis.takeaway:
        lines.append(analysis.takeaway)
    return "\n".join(lines)


# -- the use-case -------------------------------------------------------------------------------------
async def analyze_insight(session: AsyncSession, *, insight: Insight, environment: Environment,
                          runner: QueryRunner, settings: Settings) -> dict[str, Any]:
    if not isinstance(insight.query, dict) or insight.query.get("kind") != "InsightVizNode":
        return {"result": ""}
    try:
        node = parse_query(insight.query)
    except QueryError:
        return {"result": ""}  # a stored query we cannot read has nothing to analyse
    if not isinstance(node, InsightVizNode):
        return {"result": ""}
    source = node.source
    if not isinstance(source, TrendsQuery):
        kind = KIND_NAMES.get(source.kind, source.kind)
        analysis = InsightAnalysis(kind=source.kind, supported=False,
                                   headline=f"{kind} insights are not analysed yet: only trends insights have an analysis so far.")
        return AnalyzeRead(result=analysis.headline, analysis=analysis).model_dump(mode="json")
    # Blocking semantics through the shared cache: a fresh entry is reused, otherwise computed now.
    [response] = await runner.resolve_many([Item(query=insight.query, insight_id=insight.id)], cache.BLOCKING,
                                           requested=True)
    if response.get("result") is None:
        status = response.get("query_status") or {}
        reason = status.get("error_message") or "no result"
        analysis = InsightAnalysis(kind="TrendsQuery", supported=True,
                                   headline=f"The insight could not be computed, so there is nothing to analyse ({reason}).")
        return AnalyzeRead(result=analysis.headline, analysis=analysis).model_dump(mode="json")
    analysis = trends_facts(source, response["result"], timezone=response.get("timezone") or environment.timezone or "UTC")
    text = as_text(analysis)
    if settings.llm_base_url and await _ai_approved(session, environment):
        rewritten = await llm.rewrite(settings, facts=analysis.model_dump(mode="json"), draft=text)
        if rewritten is not None:
            text, analysis.text_source = rewritten, "llm"
    return AnalyzeRead(result=text, analysis=analysis).model_dump(mode="json")


async def _ai_approved(session: AsyncSession, environment: Environment) -> bool:
    org = await session.get(Organization, environment.organization_id)
    return bool(org and org.is_ai_data_processing_approved)

"""Shape executed series rows into PostHog's trends results (§10): buckets, labels, breakdown
ordering, sampling scale-up, cumulative, smoothing, compare and formulas (§9). Only formatting:
every aggregate was computed by ClickHouse."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from app.query_engine.dates import ResolvedRange, iso, labels as make_labels
from app.query_engine.trends import breakdowns as bd
from app.query_engine.trends.formula import Formula
from app.query_engine.trends.lower import UNSCALED, SeriesSpec
from app.schemas.query.series import ActionsNode, EventsNode, GroupNode
from app.schemas.query.trends import ChartDisplayType, TrendsQuery


@dataclass
class SeriesResult:
    spec: SeriesSpec
    rows: list[tuple]
    period: str


def series_label(node: Any) -> str:
    if isinstance(node, EventsNode):
        return node.event if node.event is not None else "All events"
    if isinstance(node, GroupNode):
        return node.name or " | ".join(n.event or "All events" for n in node.nodes if isinstance(n, EventsNode))
    return node.name or ""


def _num(value: Any) -> float | int:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return 0
    return value


def _category(value: Any) -> int:
    items = value if isinstance(value, list) else [value]
    if bd.OTHER in items:
        return 2
    return 1 if bd.NULL in items else 0


def _filter_echo(q: TrendsQuery, rng: ResolvedRange) -> dict[str, Any]:
    """PostHog's `_query_to_filter`: the query as a legacy filter dict, with the resolved current
    range (also on previous-period rows) and without null-valued keys (§10.2)."""
    props = q.properties
    out: dict[str, Any] = {
        "insight": "TRENDS",
        "properties": props.model_dump(mode="json", exclude_none=True) if hasattr(props, "model_dump") else
        [p.model_dump(mode="json", exclude_none=True) for p in (props or [])],
        "filter_test_accounts": bool(q.filterTestAccounts),
        "date_to": iso(rng.date_to),
        "date_from": iso(rng.date_from),
        "entity_type": "events",
        "sampling_factor": q.samplingFactor,
        "aggregation_group_type_index": q.aggregation_group_type_index,
        "interval": q.interval.value if q.interval else "day",
    }
    for part in (q.trendsFilter, q.breakdownFilter):
        if part is not None:
            out.update(part.model_dump(mode="json", exclude_none=True))
    return {k: v for k, v in out.items() if v is not None}


def _smooth(data: list[float], n: int) -> list[float]:
    out = []
    for i in range(len(data)):
        window = data[max(0, i - n + 1): i + 1]
        out.append(math.floor(sum(window) / len(window)))
    return out


def _cumulative(data: list[float]) -> list[float]:
    out, total = [], 0
    for value in data:
        total += value
        out.append(total)
    return out


def _series_rows(q: TrendsQuery, res: SeriesResult, *, multi_series: bool, compare: bool, total_value: bool,
                 display: ChartDisplayType, echo: dict[str, Any], action_days: list[str],
                 cohort_names: dict[int, str] | None = None) -> tuple[list[dict[str, Any]], bool]:
    spec = res.spec
    if isinstance(spec.node, ActionsNode):
        return [], False  # §6: a missing action (every action: there are none) drops its series
    if spec.cohort is not None and not res.rows:
        return [], False  # a cohort breakdown value without events has no row (like any breakdown value)
    node = spec.node
    label = series_label(node)
    factor = q.samplingFactor if spec.sample else None
    scale = factor is not None and spec.math not in UNSCALED

    def scaled(v: Any) -> float | int:
        v = _num(v)
        return round(v / factor) if scale else v  # type: ignore[operator]

    buckets = [] if total_value else spec.rng.buckets()
    labels, days = ([], []) if total_value else make_labels(spec.rng, buckets)
    action = {
        "days": action_days, "id": node.event if isinstance(node, EventsNode) else None,
        "type": "events", "order": spec.index, "name": label, "custom_name": node.custom_name,
        "math": node.math.value if node.math else "total", "math_property": node.math_property,
        "math_hogql": node.math_hogql, "math_group_type_index": node.math_group_type_index, "properties": {},
    }
    base = {"action": action, "filter": echo, "order": spec.index, "label": label}
    if compare:
        base.update(compare=True, compare_label=res.period)
    position = {b.key: i for i, b in enumerate(buckets)}
    # (breakdown value or None) → (rank, data or aggregated value)
    groups: dict[Any, list] = {}
    for row in res.rows:
        if spec.breakdown:
            if total_value:
                value, rank, key = row[1], row[2], row[0]
            else:
                key, value, rank = row[1], row[2], row[3]
                bucket_key = row[0]
            key = tuple(key) if isinstance(key, list) else key
        else:
            key, rank = None, 0
            value = row[0] if total_value else row[1]
            bucket_key = None if total_value else row[0]
        entry = groups.setdefault(key, [rank, 0 if total_value else [0] * len(buckets)])
        entry[0] = min(entry[0], rank)
        if total_value:
            entry[1] = scaled(value)
        elif bucket_key in position:
            entry[1][position[bucket_key]] = scaled(value)
    if not spec.breakdown and None not in groups:
        groups[None] = [0, 0 if total_value else [0] * len(buckets)]
    has_more = any(k == bd.OTHER or (isinstance(k, tuple) and bd.OTHER in k) for k in groups)
    hide_other = bool(q.breakdownFilter and q.breakdownFilter.breakdown_hide_other_aggregation)
    items = sorted(groups.items(), key=lambda kv: (kv[1][0], str(kv[0])))
    if total_value and spec.breakdown:
        items.sort(key=lambda kv: (_category(list(kv[0]) if isinstance(kv[0], tuple) else kv[0]),
                                   -kv[1][1], str(kv[0])))
    rows = []
    smoothing = (q.trendsFilter.smoothingIntervals if q.trendsFilter else 1) or 1
    for key, (_, value) in items:
        bv = list(key) if isinstance(key, tuple) else key
        if hide_other and _category(bv) == 2:
            continue
        row = dict(base)
        if spec.breakdown:
            text = "::".join(bv) if isinstance(bv, list) else bv
            row["label"] = f"{label} - {text}" if multi_series else text
            row["breakdown_value"] = bv
        elif spec.cohort is not None:  # §7.5: the cohort's name, or `all users`
            text = "all users" if spec.cohort == "all" else (cohort_names or {}).get(spec.cohort, str(spec.cohort))
            row["label"] = f"{label} - {text}" if multi_series else text
            row["breakdown_value"] = spec.cohort
        if total_value:
            row.update(data=[], days=[], count=0, aggregated_value=value)
        else:
            data = value
            if display == ChartDisplayType.ActionsLineGraphCumulative:
                data = _cumulative(data)
                count = float(data[-1]) if data else 0.0
            else:
                if smoothing > 1:
                    data = _smooth(data, smoothing)
                count = float(sum(data))
            row.update(data=data, labels=labels, days=days, count=count)
        rows.append(row)
    return rows, has_more


def formulas(q: TrendsQuery) -> list[tuple[str, str | None, str]]:
    """(formula, custom name, JSON path): formulaNodes, else the legacy formulas, else formula."""
    tf = q.trendsFilter
    if tf is None:
        return []
    if tf.formulaNodes:
        return [(f.formula, f.custom_name, f"query.trendsFilter.formulaNodes[{i}].formula")
                for i, f in enumerate(tf.formulaNodes)]
    if tf.formulas:
        return [(f, None, f"query.trendsFilter.formulas[{i}]") for i, f in enumerate(tf.formulas)]
    return [(tf.formula, None, "query.trendsFilter.formula")] if tf.formula else []


def _natural(value: Any) -> tuple:
    """A natural, case-insensitive sort key ("a2" before "a10"); lists compare item by item."""
    if isinstance(value, (list, tuple)):
        return tuple(_natural(v) for v in value)
    parts = re.split(r"(\d+)", str(value).lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)


def _formula_rows(q: TrendsQuery, per_series: list[list[dict]], formula: Formula, index: int,
                  custom_name: str | None, total_value: bool, compare: bool) -> list[dict[str, Any]]:
    keyed: dict[Any, dict[int, dict]] = {}
    order: list[Any] = []
    for s, rows in enumerate(per_series):
        for row in rows:
            key = row.get("breakdown_value")
            key = tuple(key) if isinstance(key, list) else key
            if key not in keyed:
                keyed[key] = {}
                order.append(key)
            keyed[key][s] = row
    out = []
    for key in order:
        by_series = keyed[key]
        template = dict(by_series.get(0) or next(iter(by_series.values())))
        if total_value:
            value = formula.evaluate({s: float(r.get("aggregated_value") or 0) for s, r in by_series.items()})
            template.update(aggregated_value=value, data=None, count=0)
        else:
            length = len(template.get("data") or [])
            data = [formula.evaluate({s: float(r["data"][i]) for s, r in by_series.items()}) for i in range(length)]
            template.update(data=data, count=float(sum(data)))
        template.update(label=custom_name or f"Formula ({formula.text})", action=None, order=index)
        if "breakdown_value" in template:
            template["label"] = custom_name or f"Formula ({formula.text})"
        out.append(template)
    if compare and any("breakdown_value" in r for r in out):
        # PostHog orders the breakdown values naturally (case-insensitive), then sorts each period's
        # formula rows by count, descending and stable (total-value rows all have count 0).
        out.sort(key=lambda r: _natural(r["breakdown_value"]))
        out.sort(key=lambda r: -r["count"])
    elif any("breakdown_value" in r for r in out):
        def sort_key(r: dict) -> tuple:
            bv = r["breakdown_value"]
            cat = {0: 0, 1: -1, 2: -2}[_category(bv)]
            total = r["aggregated_value"] if total_value else sum(r["data"])
            return (cat, total, r["count"], r.get("data") or [], str(bv))
        out.sort(key=sort_key, reverse=True)
    return out


def _conjoined(q: TrendsQuery, cohorts: list[Any]) -> bool:
    """PostHog answers a cohort breakdown of two or more cohorts without `all` in one query (its
    `inCohortVia: auto`), ranked like any breakdown; otherwise (or when the modifier asks for
    `subquery`/`leftjoin`) one query per cohort, in list order."""
    via = q.modifiers.inCohortVia if q.modifiers else None
    return len(cohorts) >= 2 and "all" not in cohorts and via not in ("subquery", "leftjoin")


def build_response_rows(q: TrendsQuery, results: list[SeriesResult], *, rng: ResolvedRange, compare: bool,
                        total_value: bool, display: ChartDisplayType, cohort_names: dict[int, str] | None = None,
                        ) -> tuple[list[dict[str, Any]], bool]:
    """`rng`: the current period. Every row, total-value and previous-period ones included, echoes it
    in `filter` and lists its buckets in `action.days` (PostHog's build_series_response reads both
    from the runner's own date range)."""
    echo = _filter_echo(q, rng)
    # Total-value rows have no buckets of their own; a long `all` range may exceed the time-series
    # bucket limit, which must not fail a query that only needs one number per row.
    action_days = [iso(b.start) for b in rng.buckets(limit=1_000_000 if total_value else 10_000)]
    cohorts = bd.cohort_values(q.breakdownFilter)
    # Labels get the series prefix when more than one query ran for the current period (§10.2).
    queries = len(q.series) * (1 if _conjoined(q, cohorts) else max(len(cohorts), 1))
    multi_series = len(q.series) > 1 or queries > 1
    by_period: dict[str, list[list[dict]]] = {"current": [], "previous": []}
    has_more = False
    for res in results:
        rows, more = _series_rows(q, res, multi_series=multi_series, compare=compare, total_value=total_value,
                                  display=display, echo=echo, action_days=action_days,
                                  cohort_names=cohort_names)
        has_more = has_more or more
        if cohorts and res.spec.cohort_index > 0:  # one series' cohorts make one list of rows
            by_period[res.period][-1].extend(rows)
        else:
            by_period[res.period].append(rows)
    if _conjoined(q, cohorts):  # ranked: total descending, then the id
        for lists in by_period.values():
            for rows in lists:
                rows.sort(key=lambda r: (-(r.get("aggregated_value") or 0) if total_value else -sum(r["data"]),
                                         str(r["breakdown_value"])))
    formula_list = formulas(q)
    if not formula_list:
        out = [r for rows in by_period["current"] for r in rows]
        out += [r for rows in by_period["previous"] for r in rows]
        return out, has_more
    out = []
    for i, (text, custom_name, path) in enumerate(formula_list):
        formula = Formula(text, len(q.series), path)
        for period in ("current", "previous") if compare else ("current",):
            out.extend(_formula_rows(q, by_period[period], formula, i, custom_name, total_value, compare))
    return out, has_more

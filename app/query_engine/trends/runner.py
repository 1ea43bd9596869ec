"""Run a TrendsQuery: resolve dates, lower every series (and the previous period for compare),
execute the SELECTs, and shape the rows of §10 (results.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any, Callable

from app.errors import QueryError
from app.query_engine import ir
from app.query_engine.dates import ResolvedRange, previous_period, resolve
from app.query_engine.printer import print_select
from app.query_engine.properties import filters_expr
from app.query_engine.scope import Scope
from app.query_engine.trends import breakdowns as bd
from app.query_engine.trends.lower import SeriesLowering, SeriesSpec, event_condition, histogram_stats
from app.query_engine.trends.formula import Formula
from app.query_engine.trends.results import SeriesResult, build_response_rows, formulas
from app.schemas.query.base import PersonsOnEventsMode
from app.schemas.query.series import ActionsNode, DataWarehouseNode, EventsNode, GroupNode
from app.schemas.query.trends import TOTAL_VALUE_DISPLAYS, ChartDisplayType, TrendsQuery

Execute = Callable[[str, dict[str, Any]], Any]  # async (sql, params) -> QueryResult


def _joins(select: ir.Select, alias: str) -> bool:
    """Whether `select` (or a subquery it reads from) joins something as `alias`."""
    while isinstance(select, ir.Select):
        if any(join.alias == alias for join in select.joins):
            return True
        select = select.from_  # type: ignore[assignment]
    return False


@dataclass
class CompiledQuery:
    sql: str
    params: dict[str, Any]


@dataclass
class TrendsRunner:
    query: TrendsQuery
    scope: Scope
    test_account_filters: list[Any] = field(default_factory=list)
    compiled: list[CompiledQuery] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)
    span: timedelta = timedelta(days=7)

    @property
    def display(self) -> ChartDisplayType:
        tf = self.query.trendsFilter
        return (tf.display if tf and tf.display else None) or ChartDisplayType.ActionsLineGraph

    @property
    def total_value(self) -> bool:
        return self.display in TOTAL_VALUE_DISPLAYS

    def query_filters(self, scope: Scope) -> tuple[ir.Expr, ...]:
        parts = []
        if self.query.filterTestAccounts and self.test_account_filters:
            parts.append(filters_expr(scope, self.test_account_filters, "environment.test_account_filters"))
        parts.append(filters_expr(scope, self.query.properties, "query.properties"))
        return tuple(parts)

    def check(self) -> None:
        """Reject what this engine cannot run yet with a 400 naming the field."""
        for i, node in enumerate(self.query.series):
            path = f"query.series[{i}]"
            if isinstance(node, DataWarehouseNode):
                raise QueryError(f"{path}: data warehouse series are not supported yet.", attr=f"{path}.kind")
        items = bd.breakdown_items(self.query.breakdownFilter)
        bd.check_items(items)
        for text, _, path in formulas(self.query):
            Formula(text, len(self.query.series), path)

    def resolve_range(self, earliest: datetime | None) -> ResolvedRange:
        dr = self.query.dateRange
        interval = "day" if self.total_value else (self.query.interval.value if self.query.interval else "day")
        return resolve(
            date_from=dr.date_from if dr else None, date_to=dr.date_to if dr else None,
            explicit=bool(dr and dr.explicitDate), interval=interval, tz=self.scope.tz, now=self.scope.now,
            week_start_day=self.scope.week_start_day, exact=self.display == ChartDisplayType.BoldNumber,
            earliest=earliest,
        )

    async def _run(self, execute: Execute, select: ir.Select, label: str) -> list[tuple]:
        sql, params = print_select(select)
        self.compiled.append(CompiledQuery(sql, params))
        started = time.perf_counter()
        result = await execute(sql, params)
        self.timings.append({"k": label, "t": round(time.perf_counter() - started, 6)})
        return result.rows

    async def earliest(self, execute: Execute) -> datetime | None:
        scope = self.scope.fork()
        events = [event_condition(scope, node, f"query.series[{i}]") for i, node in enumerate(self.query.series)
                  if isinstance(node, (EventsNode, GroupNode))]
        if not events:  # only action series, which match nothing (§6)
            return None
        select = ir.Select(
            columns=(ir.call("toUnixTimestamp", ir.call("min", scope.col("timestamp"))),),
            from_=ir.Table("events"), from_alias="e",
            where=ir.and_(ir.eq(scope.col("team_id"), scope.team()), ir.or_(*events) if events else None),
        )
        rows = await self._run(execute, select, "earliest_timestamp")
        seconds = int(rows[0][0]) if rows and rows[0][0] else 0
        return datetime.fromtimestamp(seconds, timezone.utc) if seconds > 0 else None

    def _specs(self, rng: ResolvedRange) -> list[SeriesSpec]:
        q = self.query
        bf = q.breakdownFilter
        items = bd.breakdown_items(bf)
        limit = (bf.breakdown_limit if bf and bf.breakdown_limit else bd.DEFAULT_LIMIT)
        if self.display == ChartDisplayType.WorldMap:
            limit = 250
        if items and not (bf and bf.breakdowns) and not items[0].bins and q.trendsFilter and \
                q.trendsFilter.breakdown_histogram_bin_count:
            items[0] = bd.BreakdownItem(items[0].type, items[0].property, items[0].normalize_url,
                                        items[0].group_type_index, q.trendsFilter.breakdown_histogram_bin_count)
        sample = None
        if q.samplingFactor is not None and q.samplingFactor < 1:
            frac = Fraction(q.samplingFactor).limit_denominator(1_000_000)
            sample = ir.Sample(frac.numerator, frac.denominator)
        # A cohort breakdown runs one query per (series, cohort), series-major (§7.5).
        cohorts: list[int | str | None] = list(bd.cohort_values(bf)) or [None]
        return [
            SeriesSpec(index=i, node=node, rng=rng, total_value=self.total_value, breakdown=list(items),
                       multiple=bool(bf and bf.breakdowns), limit=limit,
                       cumulative=self.display == ChartDisplayType.ActionsLineGraphCumulative, sample=sample,
                       cohort=cohort, cohort_index=j)
            for i, node in enumerate(q.series) for j, cohort in enumerate(cohorts)
        ]

    async def _series(self, execute: Execute, spec: SeriesSpec, period: str) -> SeriesResult:
        if isinstance(spec.node, ActionsNode):  # a missing action: no query, the series is dropped (§6)
            return SeriesResult(spec=spec, rows=[], period=period)
        for j, item in enumerate(spec.breakdown):
            if item.bins:
                rows = await self._run(execute, histogram_stats(self.scope, spec, self.query_filters, j),
                                       f"series_{spec.index}_{period}_histogram_{j}")
                lo, hi, n = rows[0] if rows else (None, None, 0)
                spec.stats[j] = (float(lo), float(hi)) if n else None
        select = SeriesLowering(self.scope, spec, self.query_filters).lower()
        rows = await self._run(execute, select, f"series_{spec.index}_{period}")
        return SeriesResult(spec=spec, rows=rows, period=period)

    def plan(self, earliest: datetime | None = None) -> tuple[ResolvedRange, bool, list[tuple[SeriesSpec, str]]]:
        """The current range, whether compare is on, and one spec per (period, series)."""
        self.check()
        rng = self.resolve_range(earliest)
        self.span = rng.date_to - rng.date_from
        periods = [("current", rng)]
        cf = self.query.compareFilter
        # `all` compares with an equal span before the first event (§8, newest); a dashboard that
        # overrides date_from with `all` switches compare off before the query gets here.
        compare = bool(cf and cf.compare)
        if compare:
            interval = self.query.interval.value if self.query.interval else "day"
            prev = previous_period(rng, cf.compare_to, interval, self.scope.tz)
            if self.total_value:
                prev = replace(prev, interval="day")
            periods.append(("previous", prev))
        jobs = [(spec, period) for period, period_rng in periods for spec in self._specs(period_rng)]
        return rng, compare, jobs

    def compile(self) -> list[CompiledQuery]:
        """Every series SELECT as (sql, params), without running anything (histogram bins are
        rendered without their min/max, which only a query can tell)."""
        _, _, jobs = self.plan()
        return [CompiledQuery(*print_select(SeriesLowering(self.scope, spec, self.query_filters).lower()))
                for spec, _ in jobs]

    async def detect_overrides(self, execute: Execute) -> None:
        if self.scope.poe_mode not in (PersonsOnEventsMode.person_id_override_properties_on_events,
                                       PersonsOnEventsMode.person_id_override_properties_joined):
            return
        select = ir.Select(columns=(ir.Const(1),), from_=ir.Table("person_distinct_id_overrides"),
                           where=ir.eq(ir.Column("team_id"), self.scope.team()), limit=1)
        self.scope.has_overrides = bool(await self._run(execute, select, "person_overrides"))

    async def run(self, execute: Execute) -> dict[str, Any]:
        dr = self.query.dateRange
        self.check()
        earliest = await self.earliest(execute) if dr and dr.date_from == "all" else None
        rng, compare, jobs = self.plan(earliest)
        # Lower everything first so a bad field fails before any query runs.
        lowered = [SeriesLowering(self.scope, spec, self.query_filters).lower() for spec, _ in jobs]
        if any(_joins(select, "overrides") for select in lowered):
            await self.detect_overrides(execute)
        # One after another: they share the request's query_id, which is what cancel() kills.
        results = [await self._series(execute, spec, period) for spec, period in jobs]
        rows, has_more = build_response_rows(self.query, list(results), rng=rng, compare=compare,
                                             total_value=self.total_value, display=self.display,
                                             cohort_names={i: c.name for i, c in self.scope.cohorts.items()})
        return {
            "results": rows,
            "hasMore": has_more,
            "resolved_date_range": rng.as_json(),
        }

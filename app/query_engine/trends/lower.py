"""Lower one trends series (for one period) to IR: the WHERE clause of §12.1, the math of §4 and
the bucket/breakdown grouping of §12.2–12.4. Lowering decides everything; the printer only renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from app.errors import QueryError
from app.query_engine import ir
from app.query_engine.dates import ResolvedRange
from app.query_engine.properties import cohort_membership, filters_expr
from app.query_engine.scope import Scope
from app.query_engine.trends import breakdowns as bd
from app.schemas.query.series import ActionsNode, EventsNode, GroupNode, MathPropertyType, MathType as M

PROPERTY_MATH = {M.sum, M.avg, M.min, M.max, M.median, M.p75, M.p90, M.p95, M.p99}
QUANTILES = {"median": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
PER_ACTOR = {M.avg_count_per_actor, M.min_count_per_actor, M.max_count_per_actor, M.median_count_per_actor,
             M.p75_count_per_actor, M.p90_count_per_actor, M.p95_count_per_actor, M.p99_count_per_actor}
# Statistics that sampling does not scale back up (§4.7).
UNSCALED = (PROPERTY_MATH - {M.sum}) | PER_ACTOR
ROLLING_DAYS = {M.weekly_active: 7, M.monthly_active: 30}
# Math whose per-group values may be summed after regrouping (see breakdowns.deferred).
ADDITIVE = {M.total, M.sum}
# Math that `_simple` can compute per raw property read and combine exactly after regrouping:
# additive values are summed, distinct counts and min/max/avg merge their aggregate states.
# Quantiles are left out: merging sampled states need not equal one pass over the events.
MERGEABLE = {M.dau, M.weekly_active, M.monthly_active, M.unique_group, M.unique_session, M.avg, M.min, M.max}
DEFERRABLE = ADDITIVE | MERGEABLE
NO_ACTION = ir.Const(0)  # the event condition of an action series (none exist: it matches nothing)
_INTERVAL_RANK = {"second": 0, "minute": 1, "hour": 2, "day": 3, "week": 4, "month": 5}


@dataclass
class SeriesSpec:
    """Everything one series query needs, already validated."""

    index: int
    node: EventsNode | ActionsNode | GroupNode
    rng: ResolvedRange
    total_value: bool
    breakdown: list[bd.BreakdownItem] = field(default_factory=list)
    multiple: bool = False
    limit: int = bd.DEFAULT_LIMIT
    cumulative: bool = False
    sample: ir.Sample | None = None
    stats: dict[int, tuple[float, float] | None] = field(default_factory=dict)
    # Cohort breakdowns (§7.5): the cohort id (or "all") this query counts, and its index in the list.
    cohort: int | str | None = None
    cohort_index: int = 0

    @property
    def path(self) -> str:
        return f"query.series[{self.index}]"

    @property
    def math(self) -> M:
        math = self.node.math or M.total
        days = ROLLING_DAYS.get(math)
        if days and _INTERVAL_RANK[self.rng.interval] >= _INTERVAL_RANK["week" if days == 7 else "month"]:
            return M.dau
        if math == M.unique_group and self.node.math_group_type_index is None:
            return M.total
        return math


def event_condition(scope: Scope, node: EventsNode | ActionsNode | GroupNode, path: str) -> ir.Expr:
    if isinstance(node, ActionsNode):
        return NO_ACTION  # §6: there are no actions, and a missing action id matches nothing
    if isinstance(node, GroupNode):
        parts = []
        for i, child in enumerate(node.nodes):
            if not isinstance(child, (EventsNode, ActionsNode)):
                raise QueryError(f"{path}.nodes[{i}]: only EventsNode and ActionsNode are supported inside a "
                                 "GroupNode.", attr=f"{path}.nodes[{i}].kind")
            parts.append(ir.and_(event_condition(scope, child, f"{path}.nodes[{i}]"),
                                 filters_expr(scope, child.properties, f"{path}.nodes[{i}].properties")))
        return ir.and_(*parts) if node.operator == "AND" else ir.or_(*parts)
    if node.event is None:
        return ir.TRUE
    return ir.eq(scope.col("event"), ir.string(node.event))


def actor(scope: Scope, spec: SeriesSpec) -> ir.Expr:
    gti = spec.node.math_group_type_index
    if gti is not None and spec.math in {M.dau, M.weekly_active, M.monthly_active, M.unique_group} | PER_ACTOR:
        return scope.col(f"$group_{int(gti)}")
    return scope.person_id()


def group_condition(scope: Scope, spec: SeriesSpec) -> ir.Expr:
    gti = spec.node.math_group_type_index
    if gti is not None and spec.math in {M.dau, M.weekly_active, M.monthly_active, M.unique_group} | PER_ACTOR:
        return ir.call("notEmpty", scope.col(f"$group_{int(gti)}"))
    return ir.TRUE


def filters(scope: Scope, spec: SeriesSpec, query_filters: tuple[ir.Expr, ...]) -> ir.Expr:
    cohort = None
    if isinstance(spec.cohort, int):
        cohort = cohort_membership(scope, spec.cohort, f"query.breakdownFilter.breakdown[{spec.cohort_index}]")
    return ir.and_(*query_filters, filters_expr(scope, spec.node.properties, f"{spec.path}.properties"), cohort)


def ts_bounds(scope: Scope, lower, upper) -> ir.Expr:
    ts = scope.col("timestamp")
    parts = []
    if lower is not None:
        parts.append(ir.BinOp(ir.Op.GTE, ts, ir.Param(lower, "DateTime64(6, 'UTC')")))
    if upper is not None:
        parts.append(ir.BinOp(ir.Op.LTE, ts, ir.Param(upper, "DateTime64(6, 'UTC')")))
    return ir.and_(*parts)


def bucket(scope: Scope, interval: str, ts: ir.Expr | None = None) -> ir.Expr:
    """The bucket key of a timestamp: a Date for day/week/month, a unix time for shorter intervals."""
    local = ir.call("toTimeZone", ts, scope.tz_param()) if ts is not None else scope.timestamp()
    if interval == "day":
        return ir.call("toDate", local)
    if interval == "week":
        return ir.call("toStartOfWeek", local, ir.Const(3 if scope.week_start_day == 1 else 0))
    if interval == "month":
        return ir.call("toStartOfMonth", local)
    if interval == "hour":
        return ir.call("toUnixTimestamp", ir.call("toStartOfHour", local))
    if interval == "minute":
        return ir.call("toUnixTimestamp", ir.call("toStartOfMinute", local))
    return ir.call("toUnixTimestamp", local)


def property_number(scope: Scope, spec: SeriesSpec) -> ir.Expr:
    node = spec.node
    if not node.math_property:
        raise QueryError(f"{spec.path}.math_property: property math needs a property.", attr=f"{spec.path}.math_property")
    if node.math_property_type == MathPropertyType.data_warehouse_person_properties:
        raise QueryError(f"{spec.path}.math_property_type: data warehouse properties are not supported yet.",
                         attr=f"{spec.path}.math_property_type")
    source = (scope.person_properties() if node.math_property_type == MathPropertyType.person_properties
              else scope.col("properties"))
    value = json_number(source, node.math_property)
    if node.math_multiplier is not None and node.math_multiplier != 1:
        value = ir.BinOp(ir.Op.MUL, value, ir.Param(float(node.math_multiplier), "Float64"))
    return value


def json_number(source: ir.Expr, key: str) -> ir.Expr:
    """A JSON property as a nullable Float64, with the values of PostHog's
    `accurateCastOrNull(<string read>, 'Float64')`: numbers, and strings that are numbers, convert;
    anything else (missing, null, other strings, arrays, objects, booleans) is NULL. Parsing straight
    into Float64 skips the raw-text round trip (about a quarter of a p90 query's CPU at 10 M events);
    only booleans need the JSONType check, and only where the number read as 0 or 1."""
    number = ir.call("JSONExtract", source, ir.string(key), ir.string("Nullable(Float64)"))
    boolean = ir.and_(ir.or_(ir.eq(number, ir.Const(0)), ir.eq(number, ir.Const(1))),
                      ir.eq(ir.call("JSONType", source, ir.string(key)), ir.string("Bool")))
    return ir.call("if", boolean, ir.Null(), number)


def stat(name: str, value: ir.Expr) -> ir.Expr:
    """avg/min/max/sum or a quantile of `value`, 0 when there is nothing to aggregate."""
    if name in QUANTILES:
        agg: ir.Expr = ir.call("quantile", value, params=(ir.Const(QUANTILES[name]),))
    else:
        agg = ir.call(name, value)
    return ir.call("ifNull", ir.call("toFloat64", agg), ir.Const(0)) if name != "sum" else ir.call(
        "ifNull", agg, ir.Const(0))


def aggregate(scope: Scope, spec: SeriesSpec) -> ir.Expr:
    math = spec.math
    if math == M.total:
        return ir.call("count")
    if math in (M.dau, M.weekly_active, M.monthly_active, M.unique_group):
        return ir.call("uniqExact", actor(scope, spec))
    if math == M.unique_session:
        return ir.call("uniqExact", scope.col("$session_id"))
    if math in PROPERTY_MATH:
        return stat(math.value, property_number(scope, spec))
    if math == M.hogql:
        from app.hogql.query import compile_expr

        if not spec.node.math_hogql:
            raise QueryError(f"{spec.path}.math_hogql: HogQL math needs an expression.", attr=f"{spec.path}.math_hogql")
        # A chart needs numbers: strings that are numbers convert, anything else (and NULL) counts as 0.
        value = compile_expr(spec.node.math_hogql, scope, f"{spec.path}.math_hogql")
        return ir.call("ifNull", ir.call("accurateCastOrNull", value, ir.string("Float64")), ir.Const(0))
    raise AssertionError(math)


def deferred_aggregate(scope: Scope, spec: SeriesSpec):
    """(inner aggregate, outer finish or None) for `_simple` with a deferred breakdown: additive
    math sums its inner values (finish None); mergeable math keeps an aggregate state per inner
    group and merges the states of one breakdown value."""
    math = spec.math
    if math in ADDITIVE:
        return aggregate(scope, spec), None
    if math in (M.avg, M.min, M.max):
        name = math.value
        return (ir.call(f"{name}State", property_number(scope, spec)),
                lambda st: ir.call("ifNull", ir.call("toFloat64", ir.call(f"{name}Merge", st)), ir.Const(0)))
    agg = aggregate(scope, spec)
    assert isinstance(agg, ir.Call) and agg.fn == "uniqExact", math
    return ir.call("uniqExactState", *agg.args), lambda st: ir.call("uniqExactMerge", st)


class SeriesLowering:
    """Builds the SELECT of one series; `query_filters` are the test-account and global filters."""

    def __init__(self, scope: Scope, spec: SeriesSpec, query_filters) -> None:
        self.base = scope
        self.spec = spec
        self.query_filters = query_filters  # callable(scope) -> tuple[ir.Expr, ...]

    def _from(self, scope: Scope, where: ir.Expr, columns, group_by=(), having=None, distinct=False) -> ir.Select:
        # Joins are collected while the expressions are built, so this must come last.
        return ir.Select(
            columns=tuple(columns), from_=ir.Table("events"), from_alias="e", sample=self.spec.sample,
            joins=scope.build_joins(), where=where, group_by=tuple(group_by), having=having, distinct=distinct,
        )

    def _where(self, scope: Scope, lower, upper, *, with_filters: bool = True) -> ir.Expr:
        spec = self.spec
        parts = [ir.eq(scope.col("team_id"), scope.team()), ts_bounds(scope, lower, upper),
                 event_condition(scope, spec.node, spec.path)]
        if with_filters:
            parts.append(filters(scope, spec, self.query_filters(scope)))
        parts.append(group_condition(scope, spec))
        return ir.and_(*parts)

    def _bv(self, scope: Scope) -> list[ir.Expr]:
        spec = self.spec
        if not spec.breakdown:
            return []
        return [ir.Alias(bd.combined_expr(scope, spec.breakdown, spec.multiple, spec.stats), "bv")]

    def lower(self) -> ir.Select:
        spec = self.spec
        math = spec.math
        if math in (M.first_time_for_user, M.first_matching_event_for_user):
            inner = self._first_time()
        elif math in PER_ACTOR:
            inner = self._per_actor()
        elif math in PROPERTY_MATH and spec.node.math_property == "$session_duration":
            inner = self._per_session(math.value)
        elif math in ROLLING_DAYS and not spec.total_value:
            inner = self._rolling(ROLLING_DAYS[math])
        elif spec.cumulative and math in (M.dau, M.unique_group):
            inner = self._first_seen()
        else:
            inner = self._simple()
        if spec.breakdown:
            return bd.ranked(inner, multiple=spec.multiple, width=len(spec.breakdown), limit=spec.limit,
                             time_series=not spec.total_value, weight=self._cumulative_weight())
        return inner

    def _cumulative_weight(self) -> ir.Expr | None:
        """For a cumulative series, how many running totals each bucket's value reaches: N for the
        first bucket, 1 for the last. Ranking by value × weight ranks by the sum of the running totals."""
        spec = self.spec
        if not spec.cumulative or spec.total_value:
            return None
        keys = [b.key for b in spec.rng.buckets()]
        sub_day = spec.rng.interval in ("second", "minute", "hour")
        keys_param = ir.Param(keys, "Array(Int64)" if sub_day else "Array(Date)")
        index = ir.call("indexOf", keys_param, ir.Column("bucket"))
        return ir.BinOp(ir.Op.SUB, ir.Const(len(keys) + 1), index)

    def _key(self, scope: Scope, ts: ir.Expr | None = None) -> list[ir.Expr]:
        return [] if self.spec.total_value else [ir.Alias(bucket(scope, self.spec.rng.interval, ts), "bucket")]

    def _group_names(self) -> tuple[ir.Expr, ...]:
        names = [] if self.spec.total_value else [ir.Column("bucket")]
        return tuple(names + ([ir.Column("bv")] if self.spec.breakdown else []))

    def _simple(self) -> ir.Select:
        scope, rng, spec = self.base.fork(), self.spec.rng, self.spec
        lower, upper = rng.lower, rng.upper
        days = ROLLING_DAYS.get(spec.math)
        if days and spec.total_value:
            lower = (rng.date_to - timedelta(days=days)).replace(microsecond=0)
        if spec.breakdown and spec.math in DEFERRABLE:
            raw_columns, value = bd.deferred(scope, spec.breakdown, spec.multiple, spec.stats)
            key = self._key(scope)
            state, finish = deferred_aggregate(scope, spec)
            columns = [*key, *raw_columns, ir.Alias(state, "value" if finish is None else "st")]
            names = [ir.Column("bucket")] if key else []
            inner = self._from(scope, self._where(scope, lower, upper), columns,
                               (*names, *(ir.Column(c.name) for c in raw_columns if isinstance(c, ir.Alias))))
            if finish is None:  # additive: `ranked` sums the rows of one breakdown value
                return ir.Select(columns=(*names, ir.Alias(value, "bv"), ir.Column("value")), from_=inner)
            return ir.Select(columns=(*names, ir.Alias(value, "bv"), ir.Alias(finish(ir.Column("st")), "value")),
                             from_=inner, group_by=(*names, ir.Column("bv")))
        columns = [*self._key(scope), *self._bv(scope), ir.Alias(aggregate(scope, spec), "value")]
        where = self._where(scope, lower, upper)
        return self._from(scope, where, columns, self._group_names())

    def _per_actor(self) -> ir.Select:
        scope, rng = self.base.fork(), self.spec.rng
        columns = [*self._key(scope), *self._bv(scope), ir.Alias(actor(scope, self.spec), "actor"),
                   ir.Alias(ir.call("count"), "c")]
        inner = self._from(scope, self._where(scope, rng.lower, rng.upper), columns,
                           (*self._group_names(), ir.Column("actor")))
        name = self.spec.math.value.removesuffix("_count_per_actor")
        return ir.Select(columns=(*self._group_names(), ir.Alias(stat(name, ir.Column("c")), "value")),
                         from_=inner, group_by=self._group_names())

    def _per_session(self, name: str) -> ir.Select:
        """Property math over `$session_duration` (§4.1): one value per session and bucket. Events
        without a session id form one more session (`''`, as for unique_session) of duration 0."""
        scope, rng = self.base.fork(), self.spec.rng
        duration = ir.call("toFloat64", scope.session_field("duration"))
        if self.spec.node.math_multiplier is not None and self.spec.node.math_multiplier != 1:
            duration = ir.BinOp(ir.Op.MUL, duration, ir.Param(float(self.spec.node.math_multiplier), "Float64"))
        columns = [*self._key(scope), *self._bv(scope), ir.Alias(scope.col("$session_id"), "sid"),
                   ir.Alias(ir.call("any", duration), "v")]
        inner = self._from(scope, self._where(scope, rng.lower, rng.upper), columns,
                           (*self._group_names(), ir.Column("sid")))
        return ir.Select(columns=(*self._group_names(), ir.Alias(stat(name, ir.Column("v")), "value")),
                         from_=inner, group_by=self._group_names())

    def _rolling(self, days: int) -> ir.Select:
        """Rolling distinct actors (§4.2), counting for each tick the actors with an event in
        (tick − L, tick]. Day/hour ticks: see `_rolling_by_actor`. Minute/week ticks: one
        distinct-actor state per truncated time (and breakdown value), copied to the ticks whose
        window contains it and merged per tick."""
        scope, rng = self.base.fork(), self.spec.rng
        interval = rng.interval
        if interval == "second":
            raise QueryError("weekly_active and monthly_active need an interval of a minute or longer.",
                             attr="query.interval")
        bv = [ir.Column("bv")] if self.spec.breakdown else []
        lower = rng.lower - timedelta(days=days)
        if interval in ("day", "hour"):
            return self._rolling_by_actor(scope, days, bv, lower)
        truncate = {"minute": "toStartOfMinute", "hour": "toStartOfHour"}.get(interval)
        local = scope.timestamp()
        day = ir.call(truncate, local) if truncate else ir.call("toDate", local)
        d = ir.Column("d")
        states = self._from(
            scope, self._where(scope, lower, rng.upper),
            [ir.Alias(day, "d"), *self._bv(scope), ir.Alias(ir.call("uniqExactState", actor(scope, self.spec)), "s")],
            (d, *bv),
        )
        buckets = rng.buckets()
        merged = ir.Alias(ir.call("uniqExactMerge", ir.Column("s")), "value")
        if interval == "week":  # monthly_active by week: join the few week ticks to every day's state
            ticks = ir.Param([b.key for b in buckets], "Array(Date)")
            spread = ir.Select(columns=(ir.Alias(ir.call("arrayJoin", ticks), "bucket"), d, *bv, ir.Column("s")),
                               from_=states)
            window = ir.and_(ir.BinOp(ir.Op.GT, d, ir.call("subtractDays", ir.Column("bucket"), ir.Const(days))),
                             ir.BinOp(ir.Op.LTE, d, ir.Column("bucket")))
            return ir.Select(columns=(ir.Column("bucket"), *bv, merged), from_=spread, where=window,
                             group_by=(ir.Column("bucket"), *bv))
        steps = days * 1440  # minute ticks
        tick = ir.call("toUnixTimestamp", ir.call("addMinutes", d, ir.call("arrayJoin", ir.call("range", ir.Const(steps)))))
        spread = ir.Select(columns=(ir.Alias(tick, "bucket"), *bv, ir.Column("s")), from_=states)
        window = ir.and_(ir.BinOp(ir.Op.GTE, ir.Column("bucket"), ir.Param(buckets[0].key, "Int64")),
                         ir.BinOp(ir.Op.LTE, ir.Column("bucket"), ir.Param(buckets[-1].key, "Int64")))
        return ir.Select(columns=(ir.Column("bucket"), *bv, merged), from_=spread, where=window,
                         group_by=(ir.Column("bucket"), *bv))

    def _rolling_by_actor(self, scope: Scope, days: int, bv: list[ir.Expr], lower) -> ir.Select:
        """Day/hour ticks: each actor's active days (hours) become the set of ticks whose window
        covers one of them, counted per tick. No distinct-actor hash sets to build or merge."""
        rng = self.spec.rng
        hour = rng.interval == "hour"
        local = scope.timestamp()
        unit = (ir.call("intDiv", ir.call("toUnixTimestamp", ir.call("toStartOfHour", local)), ir.Const(3600)) if hour
                else ir.call("toUInt32", ir.call("toDate", local)))
        actors = self._from(
            scope, self._where(scope, lower, rng.upper),
            [ir.Alias(actor(scope, self.spec), "actor"), *self._bv(scope),
             ir.Alias(ir.call("groupUniqArray", unit), "units")],
            (ir.Column("actor"), *bv),
        )
        steps = days * 24 if hour else days
        x = ir.Column("x")
        covered = ir.call("arrayDistinct", ir.call("arrayFlatten", ir.call(
            "arrayMap", ir.Lambda(("x",), ir.call("range", x, ir.BinOp(ir.Op.ADD, x, ir.Const(steps)))),
            ir.Column("units"))))
        spread = ir.Select(columns=(ir.Alias(ir.call("arrayJoin", covered), "tick"), *bv), from_=actors)
        buckets = rng.buckets()
        if hour:
            first, last = buckets[0].key // 3600, buckets[-1].key // 3600  # type: ignore[operator]
            key = ir.BinOp(ir.Op.MUL, ir.call("toInt64", ir.Column("tick")), ir.Const(3600))
        else:
            epoch = date(1970, 1, 1)
            first, last = (buckets[0].start.date() - epoch).days, (buckets[-1].start.date() - epoch).days
            key = ir.call("toDate", ir.Column("tick"))
        window = ir.and_(ir.BinOp(ir.Op.GTE, ir.Column("tick"), ir.Param(first, "Int64")),
                         ir.BinOp(ir.Op.LTE, ir.Column("tick"), ir.Param(last, "Int64")))
        return ir.Select(columns=(ir.Alias(key, "bucket"), *bv, ir.Alias(ir.call("count"), "value")), from_=spread,
                         where=window, group_by=(ir.Column("bucket"), *bv))

    def _first_time(self) -> ir.Select:
        """Actors whose first (matching) event is in the range (§4.3), counted in its bucket."""
        scope, rng, spec = self.base.fork(), self.spec.rng, self.spec
        ts = scope.col("timestamp")
        matching = filters(scope, spec, self.query_filters(scope))
        in_range = ir.and_(matching, ts_bounds(scope, rng.lower, None))
        first = (ir.call("min", ts) if spec.math == M.first_time_for_user
                 else ir.call("minIf", ts, matching))
        columns = [ir.Alias(actor(scope, spec), "actor"), ir.Alias(first, "m0"),
                   ir.Alias(ir.call("minIf", ts, in_range), "m1")]
        if spec.breakdown:
            value = bd.combined_expr(scope, spec.breakdown, spec.multiple, spec.stats)
            # The value on the event that defines m0: the first event, or the first matching one.
            chosen = (ir.call("argMin", value, ts) if spec.math == M.first_time_for_user
                      else ir.call("argMinIf", value, ts, matching))
            columns.append(ir.Alias(chosen, "bv"))
        where = self._where(scope, None, rng.upper, with_filters=False)
        having = ir.and_(ir.eq(ir.Column("m0"), ir.Column("m1")),
                         ir.BinOp(ir.Op.GT, ir.call("toUnixTimestamp", ir.Column("m1")), ir.Const(0)))
        inner = self._from(scope, where, columns, (ir.Column("actor"),), having)
        outer_scope = self.base.fork()
        key = [] if spec.total_value else [ir.Alias(bucket(outer_scope, rng.interval, ir.Column("m0")), "bucket")]
        bv = [ir.Column("bv")] if spec.breakdown else []
        return ir.Select(columns=(*key, *bv, ir.Alias(ir.call("count"), "value")), from_=inner,
                         group_by=self._group_names())

    def _first_seen(self) -> ir.Select:
        """Cumulative distinct actors (§4.6): each actor counts once, in its first bucket."""
        scope, rng = self.base.fork(), self.spec.rng
        columns = [ir.Alias(actor(scope, self.spec), "actor"), *self._bv(scope),
                   ir.Alias(ir.call("min", scope.col("timestamp")), "first")]
        group = (ir.Column("actor"), *([ir.Column("bv")] if self.spec.breakdown else []))
        inner = self._from(scope, self._where(scope, rng.lower, rng.upper), columns, group)
        key = [ir.Alias(bucket(self.base.fork(), rng.interval, ir.Column("first")), "bucket")]
        bv = [ir.Column("bv")] if self.spec.breakdown else []
        return ir.Select(columns=(*key, *bv, ir.Alias(ir.call("count"), "value")), from_=inner,
                         group_by=self._group_names())


def histogram_stats(scope: Scope, spec: SeriesSpec, query_filters, item_index: int) -> ir.Select:
    """min/max of a histogram breakdown's numeric property over the series' events (§7.4)."""
    lowering = SeriesLowering(scope, spec, query_filters)
    sub = scope.fork()
    value = bd.numeric_value(sub, spec.breakdown[item_index])
    where = ir.and_(lowering._where(sub, spec.rng.lower, spec.rng.upper), ir.IsNull(value, negated=True))
    return lowering._from(sub, where, [ir.Alias(ir.call("min", value), "lo"), ir.Alias(ir.call("max", value), "hi"),
                                       ir.Alias(ir.call("count"), "n")])

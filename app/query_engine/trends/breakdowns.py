"""Breakdown value expressions (spec §7.2, §7.4) and the ranking wrapper of §7.3/§12.3."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import QueryError
from app.query_engine import ir
from app.query_engine.properties import (json_raw, metadata_column, property_value, raw_from_parts, raw_parts,
                                         string_from_raw, typed)
from app.query_engine.scope import Scope
from app.schemas.query.base import BreakdownFilter

NULL = "$$_posthog_breakdown_null_$$"
OTHER = "$$_posthog_breakdown_other_$$"
DEFAULT_LIMIT = 25
_SUPPORTED = {"event", "person", "group", "event_metadata", "session", "hogql"}


@dataclass(frozen=True)
class BreakdownItem:
    type: str
    property: str
    normalize_url: bool = False
    group_type_index: int | None = None
    bins: int | None = None
    path: str = "query.breakdownFilter"


def is_cohort_breakdown(bf: BreakdownFilter | None) -> bool:
    return bool(bf is not None and not bf.breakdowns and bf.breakdown_type is not None
                and bf.breakdown_type.value == "cohort" and bf.breakdown not in (None, "", []))


def cohort_values(bf: BreakdownFilter | None) -> list[int | str]:
    """The cohorts of a cohort breakdown (§7.5), in list order: ids, and `"all"` for everyone."""
    if not is_cohort_breakdown(bf):
        return []
    assert bf is not None
    items = bf.breakdown if isinstance(bf.breakdown, list) else [bf.breakdown]
    out: list[int | str] = []
    for i, item in enumerate(items):
        if item == "all":
            out.append("all")
            continue
        try:
            out.append(int(item))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise QueryError(f"A cohort breakdown lists cohort ids or \"all\", not {item!r}.",
                             attr=f"query.breakdownFilter.breakdown[{i}]") from None
    return out


def breakdown_items(bf: BreakdownFilter | None) -> list[BreakdownItem]:
    """The property/expression breakdown items (cohort breakdowns run one query per cohort instead)."""
    if bf is None or is_cohort_breakdown(bf):
        return []
    if bf.breakdowns:
        return [
            BreakdownItem((b.type.value if b.type else "event"), str(b.property), bool(b.normalize_url),
                          b.group_type_index, b.histogram_bin_count, f"query.breakdownFilter.breakdowns[{i}]")
            for i, b in enumerate(bf.breakdowns)
        ]
    if bf.breakdown is None or bf.breakdown == "" or bf.breakdown == []:
        return []
    btype = bf.breakdown_type.value if bf.breakdown_type else "event"
    if isinstance(bf.breakdown, list):
        if btype != "cohort":
            raise QueryError("A list breakdown is only valid for cohorts.", attr="query.breakdownFilter.breakdown")
    return [BreakdownItem(btype, str(bf.breakdown), bool(bf.breakdown_normalize_url), bf.breakdown_group_type_index,
                          bf.breakdown_histogram_bin_count)]


def check_items(items: list[BreakdownItem]) -> None:
    for item in items:
        if item.type not in _SUPPORTED:
            what = "hogql expressions" if item.type == "hogql" else f"{item.type} breakdowns"
            raise QueryError(f"Breakdowns by {what} are not supported yet.", attr=f"{item.path}.breakdown_type"
                             if item.path == "query.breakdownFilter" else f"{item.path}.type")
        if item.type == "group" and item.group_type_index is None:
            raise QueryError("A group breakdown needs a group type index.",
                             attr=f"{item.path}.breakdown_group_type_index")


def raw_value(scope: Scope, item: BreakdownItem, json_text: ir.Expr | None = None) -> tuple[ir.Expr, str | None]:
    """The nullable value of the item; `json_text`, when given, is its raw JSON text read earlier."""
    if json_text is not None:
        found = json_raw(scope, item.type, item.property, item.group_type_index)
        assert found is not None
        return string_from_raw(json_text), found[1]
    if item.type == "event_metadata":
        return metadata_column(scope, item.property, f"{item.path}.breakdown"), None
    if item.type == "hogql":  # any value expression, read as a nullable string like a property
        from app.hogql.query import compile_expr

        attr = f"{item.path}.breakdown" if item.path == "query.breakdownFilter" else f"{item.path}.property"
        return ir.call("toString", compile_expr(item.property, scope, attr)), None
    return property_value(scope, item.type, item.property, item.group_type_index, path=f"{item.path}.breakdown")


def numeric_value(scope: Scope, item: BreakdownItem, json_text: ir.Expr | None = None) -> ir.Expr:
    raw, _ = raw_value(scope, item, json_text)
    return ir.call("accurateCastOrNull", raw, ir.string("Float64"))


def _fmt(x: float) -> str:
    """ClickHouse's text for a Float64 (shortest round-trip, no trailing `.0`)."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def bin_labels(lo: float, hi: float, count: int) -> list[str]:
    width = (hi - lo) / count
    labels = []
    for i in range(count):
        upper = hi + 0.01 if i == count - 1 else lo + (i + 1) * width
        labels.append(f"[{_fmt(lo + i * width)},{_fmt(upper)}]")
    return labels


def boolean_text(raw: ir.Expr) -> ir.Expr:
    """A Boolean-declared property as breakdown text (§5.3, §7.2): `true`/`false` (JSON booleans or
    those strings), anything else (`1`, `0`, `"yes"`) is no boolean and reads as empty, hence the null
    sentinel. PostHog types the property as `toBool(transform(toString(p), ['true','false'], [1,0],
    NULL))` before `toString`, so a `1` or `0` never reaches its labels as such."""
    return ir.call("if", ir.call("has", ir.Param(["true", "false"], "Array(String)"), raw), raw, ir.string(""))


def value_expr(scope: Scope, item: BreakdownItem, stats: tuple[float, float] | None,
               json_text: ir.Expr | None = None) -> ir.Expr:
    """The String breakdown value of one event, with the null sentinel for NULL and ''."""
    null = ir.string(NULL)
    if item.bins:
        if stats is None:
            return null
        lo, hi = stats
        v = numeric_value(scope, item, json_text)
        width = (hi - lo) / item.bins
        if width > 0:
            idx = ir.call("least", ir.call("toUInt32", ir.call("floor", ir.BinOp(
                ir.Op.DIV, ir.BinOp(ir.Op.SUB, v, ir.Param(lo, "Float64")), ir.Param(width, "Float64")))),
                ir.Const(item.bins - 1))
        else:  # one distinct value: every bucket but the last is empty ([4,4) then [4,4.01))
            idx = ir.Const(item.bins - 1)
        labels = ir.Param(bin_labels(lo, hi, item.bins), "Array(String)")
        return ir.call("if", ir.IsNull(v), null,
                       ir.call("arrayElement", labels, ir.BinOp(ir.Op.ADD, idx, ir.Const(1))))
    raw, kind = raw_value(scope, item, json_text)
    numeric = kind in ("Numeric", "Duration", "SessionNumeric", "SessionDateTime")
    text = ir.call("toString", typed(scope, raw, kind)) if numeric else raw
    if kind == "Boolean":
        text = boolean_text(raw)
    if item.normalize_url:
        stripped = ir.call("replaceRegexpAll", text, ir.string("[/?#]*$"), ir.string(""))
        text = ir.call("if", ir.call("empty", ir.call("ifNull", text, ir.string(""))), text,
                       ir.call("if", ir.call("empty", stripped), ir.string("/"), stripped))
    return ir.call("ifNull", ir.call("nullIf", text, ir.string("")), null)


def combined_expr(scope: Scope, items: list[BreakdownItem], multiple: bool,
                  stats: dict[int, tuple[float, float] | None], json_texts: dict[int, ir.Expr] | None = None
                  ) -> ir.Expr:
    texts = json_texts or {}
    exprs = [value_expr(scope, item, stats.get(i), texts.get(i)) for i, item in enumerate(items)]
    return ir.ArrayExpr(tuple(exprs)) if multiple else exprs[0]


def deferred(scope: Scope, items: list[BreakdownItem], multiple: bool,
             stats: dict[int, tuple[float, float] | None]) -> tuple[list[ir.Expr], ir.Expr]:
    """Group events by cheap reads of each property and turn them into the breakdown value after
    aggregation, on a few rows (§15): per event, `JSONExtractString` and, only where that cannot
    stand for the raw text, `JSONExtractRaw` (see `properties.raw_parts`); afterwards PostHog's
    string read of the rebuilt raw text. Different reads of one value (`"10"` and `10`) leave
    several rows, which the caller must combine (sum, or merge aggregate states).
    Returns (inner columns s0/r0…, the outer value over them); the inner columns are also the
    inner GROUP BY."""
    inner: list[ir.Expr] = []
    values: list[ir.Expr] = []
    for i, item in enumerate(items):
        found = json_raw(scope, item.type, item.property, item.group_type_index)
        if found is None:
            inner.append(ir.Alias(value_expr(scope, item, stats.get(i)), f"r{i}"))
            values.append(ir.Column(f"r{i}"))
            continue
        text, raw = raw_parts(found[0])  # type: ignore[arg-type]
        inner += [ir.Alias(text, f"s{i}"), ir.Alias(raw, f"r{i}")]
        values.append(value_expr(scope, item, stats.get(i), raw_from_parts(ir.Column(f"s{i}"), ir.Column(f"r{i}"))))
    return inner, (ir.ArrayExpr(tuple(values)) if multiple else values[0])


def ranked(inner: ir.Select, *, multiple: bool, width: int, limit: int, time_series: bool,
           weight: ir.Expr | None = None) -> ir.Select:
    """Rank breakdown values and fold those beyond `limit` into the other sentinel (§7.3).

    `inner` yields (bucket?, bv, value). Output columns: bucket?, breakdown value, value, rank
    (rank limit+1 is the other row). `weight` (per bucket) multiplies each value in the ranking total:
    a cumulative series ranks by the sum of its running totals, as PostHog does."""
    bv, value = ir.Column("bv"), ir.Column("value")
    ranked_value = value if weight is None else ir.BinOp(ir.Op.MUL, value, weight)
    bucket = (ir.Column("bucket"),) if time_series else ()
    if multiple:
        cat = ir.call("multiIf", ir.call("has", bv, ir.string(OTHER)), ir.Const(2),
                      ir.call("has", bv, ir.string(NULL)), ir.Const(1), ir.Const(0))
        other: ir.Expr = ir.Param([OTHER] * width, "Array(String)")
    else:
        cat = ir.call("multiIf", ir.eq(bv, ir.string(OTHER)), ir.Const(2), ir.eq(bv, ir.string(NULL)), ir.Const(1),
                      ir.Const(0))
        other = ir.string(OTHER)
    totals = ir.Select(
        columns=(*bucket, bv, value,
                 ir.Alias(ir.Window(ir.call("sum", ranked_value), partition_by=(bv,)), "total"),
                 ir.Alias(cat, "cat")),
        from_=inner,
    )
    order = (ir.OrderBy(ir.Column("total"), ir.Direction.DESC), ir.OrderBy(bv))
    if time_series:
        order = (ir.OrderBy(ir.Column("cat")), *order)
    ranks = ir.Select(
        columns=(*bucket, bv, value, ir.Alias(ir.Window(ir.call("dense_rank"), order_by=order), "rank0")),
        from_=totals,
    )
    keep = ir.BinOp(ir.Op.LTE, ir.Column("rank0"), ir.Const(limit))
    folded = ir.Select(
        columns=(*bucket, ir.Alias(ir.call("if", keep, bv, other), "bd"), value,
                 ir.Alias(ir.call("least", ir.Column("rank0"), ir.Const(limit + 1)), "rk")),
        from_=ranks,
    )
    return ir.Select(
        columns=(*bucket, ir.Column("bd"), ir.Alias(ir.call("sum", value), "v"),
                 ir.Alias(ir.call("min", ir.Column("rk")), "r")),
        from_=folded,
        group_by=(*bucket, ir.Column("bd")),
        limit=50_000,
    )

"""Property filters (spec/QUERY_ENGINE.md §5) → IR boolean expressions with the NULL rules of §5.4.

Every key and value becomes a parameter. The value of a property is read as a nullable String
(missing or JSON null → NULL, strings without their quotes, numbers/booleans as their JSON text),
then typed from the environment's property definitions (Numeric, Boolean, DateTime).
"""

from __future__ import annotations

import re
from typing import Any

from app.errors import QueryError
from app.models.definitions import EVENT_PROPERTY, GROUP_PROPERTY, PERSON_PROPERTY
from app.query_engine import ir
from app.query_engine.catalog import EVENT_METADATA_COLUMNS
from app.query_engine.dates import parse_date
from app.query_engine.scope import Scope
from app.schemas.query.properties import PropertyGroupFilter, PropertyGroupFilterValue, PropertyOperator as Op

NEGATIVE = {Op.is_not, Op.not_icontains, Op.not_regex, Op.not_in, Op.not_icontains_multi}
_UNSUPPORTED_TYPES = {"data_warehouse", "data_warehouse_person_property"}
# Session properties we can compute from events: key → (column of the session join, type).
SESSION_FIELDS = {
    "$session_duration": ("duration", "Numeric"),
    "$pageview_count": ("pageview_count", "Numeric"),
    "$start_timestamp": ("start_timestamp", "DateTime"),
    "$end_timestamp": ("end_timestamp", "DateTime"),
    "$entry_current_url": ("entry_url", None),
    "$exit_current_url": ("exit_url", None),
    "$end_current_url": ("exit_url", None),
}


def string_from_raw(raw: ir.Expr) -> ir.Expr:
    """PostHog's string read of a raw JSON value: NULL when missing or null, raw text otherwise.

    Same result as PostHog's `replaceRegexpAll(nullIf(nullIf(raw, ''), 'null'), '^"|"$', '')` for
    valid JSON (only strings start or end with a quote) without the regex."""
    return ir.call(
        "if", ir.call("startsWith", raw, ir.string('"')),
        ir.call("substring", raw, ir.Const(2), ir.BinOp(ir.Op.SUB, ir.call("length", raw), ir.Const(2))),
        ir.call("nullIf", ir.call("nullIf", raw, ir.string("")), ir.string("null")),
    )


def raw_parts(raw: ir.Call) -> tuple[ir.Expr, ir.Expr]:
    """`JSONExtractRaw(source, key…)` split into two cheaper per-event reads to group by (§15):
    the `JSONExtractString` of the same element, and the raw text only where that string cannot
    stand for it (empty: missing, null, `""`, unparsable; `{`/`[`: an object or array, which
    `JSONExtractString` reads as its JSON text, so an object and a string of the same text
    would meet). `JSONExtractRaw` is then evaluated on those rows only (short-circuit `if`).
    `raw_from_parts` turns a grouped pair back into text that `string_from_raw` reads as PostHog does."""
    assert raw.fn == "JSONExtractRaw"
    text = ir.call("JSONExtractString", *raw.args)
    needs_raw = ir.or_(ir.call("empty", text), ir.call("startsWith", text, ir.string("{")),
                       ir.call("startsWith", text, ir.string("[")))
    return text, ir.call("if", needs_raw, raw, ir.string(""))


def raw_from_parts(text: ir.Expr, raw: ir.Expr) -> ir.Expr:
    """The inverse of `raw_parts` on grouped values: the raw text where it was read, otherwise the
    string re-escaped the way `JSONExtractRaw` writes it (`toJSONString` also escapes `/`, which
    `JSONExtractRaw` leaves alone; every `\\/` of its output is such an escape). Numbers and
    booleans read by `JSONExtractString` are their raw text, which quoting leaves unchanged for
    `string_from_raw`. Checked against `JSONExtractRaw` for every Unicode scalar value, escaped
    and literal, and for edge-case numbers (tests/query_engine/trends/test_breakdowns.py)."""
    escaped = ir.call("replaceAll", ir.call("toJSONString", text), ir.string("\\/"), ir.string("/"))
    return ir.call("if", ir.or_(ir.call("empty", text), ir.call("notEmpty", raw)), raw, escaped)


def json_string(source: ir.Expr, key: str) -> ir.Expr:
    return string_from_raw(ir.call("JSONExtractRaw", source, ir.string(key)))


def typed(scope: Scope, value: ir.Expr, kind: str | None) -> ir.Expr:
    if kind in ("SessionNumeric", "SessionDateTime"):
        return value
    if kind in ("Numeric", "Duration"):
        return ir.call("accurateCastOrNull", value, ir.string("Float64"))
    if kind == "DateTime":
        return ir.call("parseDateTime64BestEffortOrNull", value, ir.Const(6), scope.tz_param())
    return value


def base_kind(kind: str | None) -> str | None:
    return kind.removeprefix("Session") if kind else None


def json_raw(scope: Scope, ptype: str, key: Any, group_type_index: int | None = None
             ) -> tuple[ir.Expr, str | None] | None:
    """(raw JSON text, declared type) of an event/person/group property; None for other sources."""
    key = str(key)
    if ptype in ("event", "feature"):
        source, index, kind = scope.col("properties"), (EVENT_PROPERTY, -1, key), None
    elif ptype == "person":
        source, index = scope.person_properties(), (PERSON_PROPERTY, -1, key)
    elif ptype == "group" and group_type_index is not None:
        source, index = scope.group_properties(group_type_index), (GROUP_PROPERTY, group_type_index, key)
    else:
        return None
    kind = scope.property_types.get(index)
    return ir.call("JSONExtractRaw", source, ir.string(key)), kind


def property_value(scope: Scope, ptype: str, key: Any, group_type_index: int | None = None,
                   path: str | None = None) -> tuple[ir.Expr, str | None]:
    """(nullable expression, declared property type) of one property of the event/person/group/session."""
    raw = json_raw(scope, ptype, key, group_type_index)
    if raw is not None:
        return string_from_raw(raw[0]), raw[1]
    key = str(key)
    if ptype == "session":
        if key not in SESSION_FIELDS:
            raise QueryError(f"Session property {key!r} is not supported; use one of "
                             f"{', '.join(sorted(SESSION_FIELDS))}.", attr=path)
        column, kind = SESSION_FIELDS[key]
        field_expr = scope.session_field(column)
        if kind == "Numeric":
            return ir.call("toFloat64", field_expr), "Session" + kind
        if kind == "DateTime":
            return field_expr, "SessionDateTime"
        return ir.call("nullIf", field_expr, ir.string("")), None
    raise AssertionError(ptype)


def metadata_column(scope: Scope, key: str, path: str) -> ir.Expr:
    if key not in EVENT_METADATA_COLUMNS:
        raise QueryError(f"{path}: unknown event field {key!r}.", attr=path)
    if key == "person_id":
        return ir.call("toString", scope.person_id())
    return ir.call("toString", scope.col(key))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any, path: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise QueryError(f"{path}: {value!r} is not a number.", attr=path) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise QueryError(f"{path}: {value!r} is not a finite number.", attr=path)
    return number


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(scope: Scope, v: ir.Expr, kind: str | None, op: Op, x: Any, path: str) -> ir.Expr:
    """One operator on the nullable value `v` against the filter value `x` (§5.5)."""
    if op in (Op.is_set, Op.is_not_set):
        return ir.IsNull(v, negated=op == Op.is_set)
    if op == Op.flag_evaluates_to:
        return ir.TRUE
    if op.value.startswith("semver"):
        return semver(scope, v, kind, op, x, path)
    if op in (Op.in_, Op.not_in, Op.icontains_multi, Op.not_icontains_multi):
        if not isinstance(x, list):
            raise QueryError(f"{path}: the {op.value} operator needs a list value.", attr=path)
        items = ir.Param([_text(i) for i in x], "Array(String)")
        if op in (Op.icontains_multi, Op.not_icontains_multi):
            hit = ir.call("ifNull", ir.call("multiSearchAnyCaseInsensitive", ir.call("toString", v), items), ir.Const(0))
        else:
            hit = ir.call("has", items, ir.call("toString", v) if kind else v)
        return ir.Not(hit) if op in NEGATIVE else hit
    if op in (Op.between, Op.not_between):
        if not isinstance(x, list) or len(x) != 2:
            raise QueryError(f"{path}: {op.value} needs a list of two numbers.", attr=path)
        lo, hi = _number(x[0], path), _number(x[1], path)
        if lo > hi:
            raise QueryError(f"{path}: the lower bound is greater than the upper bound.", attr=path)
        num = v if kind in ("Numeric", "Duration") else ir.call("toFloat64OrNull", v)
        lo_p, hi_p = ir.Param(lo, "Float64"), ir.Param(hi, "Float64")
        if op == Op.between:
            cond: ir.Expr = ir.And((ir.BinOp(ir.Op.GTE, num, lo_p), ir.BinOp(ir.Op.LTE, num, hi_p)))
        else:
            cond = ir.Or((ir.BinOp(ir.Op.LT, num, lo_p), ir.BinOp(ir.Op.GT, num, hi_p)))
        return ir.call("ifNull", cond, ir.Const(0))
    if isinstance(x, list):
        if not x:
            return ir.TRUE
        if len(x) == 1:
            return compare(scope, v, kind, op, x[0], path)
        if op == Op.exact and kind not in ("Numeric", "Duration", "DateTime"):
            return ir.call("has", ir.Param([_text(i) for i in x], "Array(String)"), v)
        if op == Op.is_not and kind not in ("Numeric", "Duration", "DateTime"):
            return ir.Not(ir.call("has", ir.Param([_text(i) for i in x], "Array(String)"), v))
        parts = tuple(compare(scope, v, kind, op, i, path) for i in x)
        return ir.And(parts) if op in NEGATIVE else ir.Or(parts)
    if x is None:
        raise QueryError(f"{path}: the {op.value} operator needs a value.", attr=path)
    positive, null_result = _scalar(scope, v, kind, op, x, path)
    return ir.call("ifNull", positive, ir.Const(null_result))


def _scalar(scope: Scope, v: ir.Expr, kind: str | None, op: Op, x: Any, path: str) -> tuple[ir.Expr, int]:
    """(condition, its value when v is NULL)."""
    numeric = kind in ("Numeric", "Duration")
    if op in (Op.exact, Op.is_not, Op.is_cleaned_path_exact):
        right = ir.Param(_number(x, path), "Float64") if numeric else ir.string(_text(x))
        if kind == "DateTime":
            right = ir.Param(parse_date(_text(x), scope.tz, scope.now, path=path).value, "DateTime64(6, 'UTC')")
        if op == Op.is_not:
            return ir.BinOp(ir.Op.NE, v, right), 1
        return ir.eq(v, right), 0
    if op in (Op.icontains, Op.not_icontains):
        like = ir.call("ilike", ir.call("toString", v), ir.string(f"%{_text(x)}%"))
        return (ir.Not(like), 1) if op == Op.not_icontains else (like, 0)
    if op in (Op.regex, Op.not_regex):
        hit = ir.call("match", ir.call("toString", v), ir.string(_text(x)))
        return (ir.Not(hit), 1) if op == Op.not_regex else (hit, 0)
    if op in (Op.gt, Op.gte, Op.lt, Op.lte, Op.min, Op.max):
        sym = {Op.gt: ir.Op.GT, Op.gte: ir.Op.GTE, Op.min: ir.Op.GTE, Op.lt: ir.Op.LT, Op.lte: ir.Op.LTE,
               Op.max: ir.Op.LTE}[op]
        if kind == "DateTime":
            right = ir.Param(parse_date(_text(x), scope.tz, scope.now, path=path).value, "DateTime64(6, 'UTC')")
            return ir.BinOp(sym, v, right), 0
        if numeric:
            return ir.BinOp(sym, v, ir.Param(_number(x, path), "Float64")), 0
        if _is_number(x):  # untyped property against a number: compare as numbers (documented choice)
            return ir.BinOp(sym, ir.call("toFloat64OrNull", v), ir.Param(float(x), "Float64")), 0
        return ir.BinOp(sym, v, ir.string(_text(x))), 0
    if op in (Op.is_date_exact, Op.is_date_before, Op.is_date_after):
        left = v if kind == "DateTime" else ir.call("parseDateTime64BestEffortOrNull", v, ir.Const(6), scope.tz_param())
        right = ir.Param(parse_date(_text(x), scope.tz, scope.now, path=path).value, "DateTime64(6, 'UTC')")
        sym = {Op.is_date_exact: ir.Op.EQ, Op.is_date_before: ir.Op.LT, Op.is_date_after: ir.Op.GT}[op]
        return ir.BinOp(sym, left, right), 0
    raise QueryError(f"{path}: unsupported operator {op.value}.", attr=path)


# --- semver (§5.5, newest) -----------------------------------------------------------------------

# A version is `X.Y.Z` without leading zeros, optionally after `v` and before a `-pre`/`+build`
# suffix, with surrounding blanks. Anything else (`1.2`, `1.2.3.4`, `01.2.3`, missing) is invalid and
# fails every semver operator, `semver_neq` included, as in PostHog.
SEMVER_RE = r"^\s*v?((0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*))(?:[-+][^\s]*)?\s*$"
_SEMVER = re.compile(SEMVER_RE.replace("$", r"\Z"))
_SEMVER_CMP = {Op.semver_eq: ir.Op.EQ, Op.semver_neq: ir.Op.NE, Op.semver_gt: ir.Op.GT,
               Op.semver_gte: ir.Op.GTE, Op.semver_lt: ir.Op.LT, Op.semver_lte: ir.Op.LTE}


def _semver_key(text: str) -> list[int] | None:
    m = _SEMVER.match(text)
    return [int(m.group(i)) for i in (2, 3, 4)] if m else None


def _semver_parts(value: str) -> tuple[str, str, str]:
    """Lenient (major, minor, patch) of a filter value: pre-release dropped, missing parts 0."""
    parts = value.split("-")[0].split(".")
    if not parts[0]:
        raise ValueError(value)
    major, minor, patch = parts[0], parts[1] if len(parts) > 1 else "0", parts[2] if len(parts) > 2 else "0"
    int(major), int(minor), int(patch)
    return major, minor, patch


def _semver_bounds(op: Op, value: str) -> tuple[str, str]:
    """[lower, upper) of `~`, `^` and wildcard ranges, as version strings."""
    if op == Op.semver_tilde:
        if len(value.split("-")[0].split(".")) < 2:
            raise ValueError(value)
        major, minor, patch = _semver_parts(value)
        return f"{major}.{minor}.{patch}", f"{major}.{int(minor) + 1}.0"
    if op == Op.semver_caret:
        major, minor, patch = _semver_parts(value)
        if int(major) > 0:
            upper = f"{int(major) + 1}.0.0"
        elif int(minor) > 0:
            upper = f"0.{int(minor) + 1}.0"
        else:
            upper = f"0.0.{int(patch) + 1}"
        return f"{major}.{minor}.{patch}", upper
    value = value.rstrip(".*")
    parts = value.split("-")[0].split(".") if value else []
    if not parts:
        raise ValueError(value)
    numbers = [int(p) for p in parts[:3]]
    if len(numbers) == 1:
        return f"{parts[0]}.0.0", f"{numbers[0] + 1}.0.0"
    if len(numbers) == 2:
        return f"{parts[0]}.{parts[1]}.0", f"{parts[0]}.{numbers[1] + 1}.0"
    # four components: never a valid version, so the range matches nothing (as upstream)
    return f"{parts[0]}.{parts[1]}.{parts[2]}.0", f"{parts[0]}.{parts[1]}.{numbers[2] + 1}.0"


def semver(scope: Scope, v: ir.Expr, kind: str | None, op: Op, x: Any, path: str) -> ir.Expr:
    """Semver comparisons on (major, minor, patch) integer arrays; the filter side is parsed here."""
    if not isinstance(x, str):
        raise QueryError(f"{path}: the {op.value} operator needs a version string.", attr=path)
    text = ir.call("ifNull", ir.call("toString", v) if kind else v, ir.string(""))
    version = ir.call("extract", text, ir.string(SEMVER_RE))
    key = ir.call("arrayMap", ir.Lambda(("part",), ir.call("accurateCastOrNull", ir.Column("part"), ir.string("Int64"))),
                  ir.call("splitByChar", ir.string("."), version))
    if op in _SEMVER_CMP:
        right = _semver_key(x)
        if right is None:
            return ir.Const(0)
        return ir.and_(ir.call("notEmpty", version), ir.BinOp(_SEMVER_CMP[op], key, ir.Param(right, "Array(Int64)")))
    try:
        lower, upper = _semver_bounds(op, x)
    except (ValueError, IndexError):
        raise QueryError(f"{path}: {x!r} is not a valid version for {op.value} (e.g. '1.2.3').", attr=path) from None
    lo, hi = _semver_key(lower), _semver_key(upper)
    if lo is None or hi is None:
        return ir.Const(0)
    return ir.and_(ir.call("notEmpty", version), ir.BinOp(ir.Op.GTE, key, ir.Param(lo, "Array(Int64)")),
                   ir.BinOp(ir.Op.LT, key, ir.Param(hi, "Array(Int64)")))


# --- elements (§5.7) -----------------------------------------------------------------------------

_SELECTOR_PART_RE = re.compile(
    r"^(?P<tag>[A-Za-z][A-Za-z0-9_-]*)?(?P<rest>(?:[#.][A-Za-z0-9_-]+|\[[^\]]+\])*)$"
)
_ELEMENT_TAIL = r'([-_a-zA-Z0-9\.:"= ]*?)?($|;|:([^;^\s]*(;|$|\s)))'


def selector_regex(selector: str, path: str) -> str:
    """A CSS selector → the regex over elements_chain of §11.4 (innermost element first)."""
    parts = [p for p in re.split(r"\s*>\s*|\s+", selector.strip()) if p]
    if not parts:
        raise QueryError(f"{path}: empty selector.", attr=path)
    pieces = []
    for part in reversed(parts):
        m = _SELECTOR_PART_RE.match(part)
        if not m:
            raise QueryError(f"{path}: unsupported selector {selector!r}.", attr=path)
        classes, attrs = [], []
        for token in re.findall(r"[#.][A-Za-z0-9_-]+|\[[^\]]+\]", m.group("rest")):
            if token[0] == ".":
                classes.append(token[1:])
            elif token[0] == "#":
                attrs.append(("attr_id", token[1:]))
            else:
                key, _, val = token[1:-1].partition("=")
                attrs.append((key.strip(), val.strip().strip("'\"")))
        regex = re.escape(m.group("tag")) if m.group("tag") else ""
        regex += "".join(rf".*?\.{re.escape(c)}" for c in sorted(classes))
        regex += "".join(f'.*?{re.escape(k)}="{re.escape(v)}".*?' for k, v in sorted(attrs))
        pieces.append(regex + _ELEMENT_TAIL)
    return "(^|;)" + ".*".join(pieces)


def _element(scope: Scope, key: str, op: Op, value: Any, path: str) -> ir.Expr:
    values = value if isinstance(value, list) else [value]
    chain = scope.col("elements_chain")
    if key in ("tag_name", "selector"):
        if op not in (Op.exact, Op.is_not):
            raise QueryError(f"{path}: element {key} filters support only exact and is_not.", attr=path)
        regexes = [
            rf"(^|;){re.escape(_text(v))}(\.|$|;|:)" if key == "tag_name" else selector_regex(_text(v), path)
            for v in values
        ]
        hit = ir.or_(*(ir.call("match", chain, ir.string(r)) for r in regexes))
        return ir.Not(hit) if op == Op.is_not else hit
    if key == "href":
        return compare(scope, ir.call("nullIf", scope.col("elements_chain_href"), ir.string("")), None, op, value, path)
    if key == "text":
        positive_op = {Op.is_not: Op.exact, Op.not_icontains: Op.icontains, Op.not_regex: Op.regex}.get(op, op)
        body = compare(scope, ir.Column("x"), None, positive_op, value, path)
        hit = ir.call("arrayExists", ir.Lambda(("x",), body), scope.col("elements_chain_texts"))
        return ir.Not(hit) if positive_op != op else hit
    raise QueryError(f"{path}: unknown element filter key {key!r}.", attr=path)


# --- cohorts (§5.6, §12.6) ------------------------------------------------------------------------


def cohort_members(scope: Scope, cohort_id: int, path: str) -> ir.Select:
    """The person ids of a cohort: `person_static_cohort` for a static one, else `cohortpeople` at the
    cohort's current version (the newest calculated one when PostgreSQL has none) with sign > 0."""
    info = scope.cohorts.get(cohort_id)
    if info is None:  # PostHog fails the query on an unknown cohort id; say so with a 400
        raise QueryError(f"{path}: cohort {cohort_id} does not exist.", attr=path)
    team = ir.eq(ir.Column("team_id"), scope.team())
    cohort = ir.eq(ir.Column("cohort_id"), ir.Param(cohort_id, "Int64"))
    if info.is_static:
        return ir.Select(columns=(ir.Column("person_id"),), from_=ir.Table("person_static_cohort"),
                         where=ir.and_(team, cohort))
    if info.version is not None:
        version: ir.Expr = ir.Param(info.version, "UInt64")
    else:
        version = ir.Subquery(ir.Select(columns=(ir.call("max", ir.Column("version")),),
                                        from_=ir.Table("cohortpeople"), where=ir.and_(team, cohort)))
    return ir.Select(
        columns=(ir.Column("person_id"),), from_=ir.Table("cohortpeople"),
        where=ir.and_(team, cohort, ir.eq(ir.Column("version"), version)),
        group_by=(ir.Column("person_id"),), having=ir.BinOp(ir.Op.GT, ir.call("sum", ir.Column("sign")), ir.Const(0)),
    )


def cohort_membership(scope: Scope, cohort_id: int, path: str) -> ir.Expr:
    """Whether the event's person is in the cohort."""
    return ir.BinOp(ir.Op.IN, scope.person_id(), ir.Subquery(cohort_members(scope, cohort_id, path)))


# --- filters and groups --------------------------------------------------------------------------


_VALUELESS = (Op.is_set, Op.is_not_set)


def _applicable(item: Any, ftype: str) -> bool:
    """Whether a filter can be applied (§5.1). PostHog builds a legacy `Property` from it and, when
    that fails (no key; no value unless the operator is is_set/is_not_set; a cohort without an id),
    compiles the filter to true instead of failing the query."""
    key = getattr(item, "key", None)
    if key is None:
        return False
    if ftype == "hogql":
        return True
    if getattr(item, "value", None) is None:
        return ftype != "cohort" and getattr(item, "operator", None) in _VALUELESS
    return True


def filter_expr(scope: Scope, item: Any, path: str) -> ir.Expr:
    """One filter or AND/OR group (§5.1, §5.2) as a boolean expression."""
    if isinstance(item, (PropertyGroupFilter, PropertyGroupFilterValue)):
        parts = [filter_expr(scope, v, f"{path}.values[{i}]") for i, v in enumerate(item.values)]
        parts = [p for p in parts if p != ir.TRUE] if item.type.value == "AND" else parts
        if not parts:
            return ir.TRUE
        return ir.and_(*parts) if item.type.value == "AND" else ir.or_(*parts)
    ftype = getattr(item, "type", "event")
    if not _applicable(item, ftype):
        return ir.TRUE  # §5.1: `{}` and filters that cannot be parsed are ignored
    if ftype in _UNSUPPORTED_TYPES:
        raise QueryError(f"{path}: {ftype} property filters are not supported yet.", attr=f"{path}.type")
    if ftype == "hogql":  # a boolean HogQL expression in `key`; NULL counts as false
        from app.hogql.query import compile_expr

        return ir.call("ifNull", compile_expr(str(item.key), scope, f"{path}.key"), ir.Const(0))
    if ftype == "cohort":  # `not_in`, or the legacy `negation: true`, negates
        hit = cohort_membership(scope, int(item.value), f"{path}.value")
        return ir.Not(hit) if item.operator == Op.not_in or getattr(item, "negation", None) is True else hit
    op = item.operator or Op.exact
    value = getattr(item, "value", None)
    key = item.key
    if ftype == "element":
        return _element(scope, key, op, value, path)
    if ftype == "event_metadata":
        return compare(scope, metadata_column(scope, str(key), f"{path}.key"), None, op, value, path)
    if ftype == "event" and key == "$elements_chain":
        return compare(scope, scope.col("elements_chain"), None, op, value, path)
    if ftype == "group":
        if item.group_type_index is None:
            return ir.TRUE  # spec §5.6: ignored without an index
        v, kind = property_value(scope, "group", key, item.group_type_index)
    else:
        v, kind = property_value(scope, ftype, key, path=f"{path}.key")
    return compare(scope, typed(scope, v, kind), base_kind(kind), op, value, path)


def filters_expr(scope: Scope, items: Any, path: str) -> ir.Expr:
    """A plain list (AND) or a group; None and empty lists are true."""
    if items is None:
        return ir.TRUE
    if isinstance(items, PropertyGroupFilter):
        return filter_expr(scope, items, path)
    return ir.and_(*(filter_expr(scope, item, f"{path}[{i}]") for i, item in enumerate(items)))

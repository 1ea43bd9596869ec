"""Render IR (app/query_engine/ir.py) to `(sql, params)` for the executor.

Trust model: the printer trusts nothing that could have come from a request. Every value is a
`Param` and becomes a server-side parameter `{pN:Type}`, so its text never appears in the SQL.
Identifiers (tables, columns, aliases, lambda arguments) must match the catalog pattern and are
always backquoted; function names must be keys of `FUNCTIONS`; `Const` numbers were chosen by the
engine or validated as bounded numbers by Pydantic, and are re-checked here as int/float; parameter
types are engine constants and are checked against a strict pattern. Anything else raises. The
printer does no catalog lookups and fills in no defaults: lowering decides, the printer renders.
"""

from __future__ import annotations

import math
import re
from typing import Any

from app.query_engine import ir
from app.query_engine.catalog import NAME_RE

# Our name → ClickHouse name. Only these functions can appear in generated SQL.
FUNCTIONS: dict[str, str] = {name: name for name in (
    "count", "uniqExact", "sum", "avg", "min", "max", "quantile", "argMax", "argMin", "minIf", "argMinIf",
    "ifNull", "nullIf", "if", "multiIf", "isNull", "empty", "notEmpty", "toTimeZone", "toDate", "toStartOfDay",
    "toStartOfWeek", "toStartOfMonth", "toStartOfHour", "toStartOfMinute", "toStartOfSecond", "toUnixTimestamp",
    "toDateTime64", "addDays", "addHours", "addMinutes", "addSeconds", "arrayJoin", "range", "JSONExtractRaw",
    "replaceRegexpAll", "accurateCastOrNull", "toString", "toFloat64OrNull", "toFloat64", "ilike", "notILike",
    "match", "has", "dense_rank", "parseDateTime64BestEffortOrNull", "arrayExists", "multiSearchAnyCaseInsensitive",
    "floor", "least", "greatest", "toUInt32", "toInt64", "dateDiff", "round", "arrayElement", "length", "tuple",
    "subtractDays", "toDayOfWeek", "position", "in", "notIn", "toIntervalDay", "startsWith", "substring",
    "uniqExactState", "uniqExactMerge", "toUInt32", "JSONExtractString", "countIf", "any", "intDiv", "groupUniqArray", "arrayDistinct",
    "arrayFlatten", "arrayMap", "JSONExtract", "JSONType", "toJSONString", "replaceAll", "avgState", "avgMerge",
    "minState", "minMerge", "maxState", "maxMerge",
)}

# HogQL (app/hogql/functions.py) may emit these too; each is an allowlisted ClickHouse name.
FUNCTIONS.update({name: name for name in (
    "uniq", "uniqIf", "sumIf", "avgIf", "maxIf", "median", "quantiles", "anyLast", "groupArray", "stddevPop",
    "stddevSamp", "varPop", "varSamp", "coalesce", "isNotNull", "assumeNotNull", "abs", "ceil", "sqrt", "pow",
    "exp", "log", "log2", "log10", "modulo", "plus", "minus", "multiply", "divide", "lower", "upper", "concat",
    "trim", "trimLeft", "trimRight", "replaceAll", "replaceOne", "replaceRegexpOne", "positionCaseInsensitive",
    "endsWith", "splitByChar", "splitByString", "extract", "like", "notLike", "reverse", "leftPad", "rightPad",
    "left", "right", "base64Encode", "base64Decode", "domain", "path", "cutQueryString", "lengthUTF8",
    "JSONExtractInt", "JSONExtractFloat", "JSONExtractBool", "JSONHas", "JSONLength", "JSONExtractKeys",
    "hasAny", "hasAll", "indexOf", "arraySlice", "arraySort", "arrayReverse", "arrayConcat",
    "arrayStringConcat", "arrayCompact", "arrayUniq", "array", "toStartOfQuarter", "toStartOfYear", "toMonday",
    "toYear", "toQuarter", "toMonth", "toDayOfMonth", "toDayOfYear", "toHour", "toMinute", "toSecond",
    "toISOWeek", "toYYYYMM", "toYYYYMMDD", "dateAdd", "dateSub", "formatDateTime", "addWeeks", "addMonths",
    "addYears", "subtractHours", "subtractMinutes", "subtractWeeks", "subtractMonths", "subtractYears",
    "toIntervalSecond", "toIntervalMinute", "toIntervalHour", "toIntervalWeek", "toIntervalMonth",
    "toIntervalYear", "toUUID", "toTypeName", "cityHash64", "sipHash64", "now64", "equals", "notEquals",
    "row_number", "rank", "lagInFrame", "leadInFrame", "first_value", "last_value",
)})

# HogQL higher-order array functions (lambdas) and more window functions.
FUNCTIONS.update({name: name for name in (
    "arrayFilter", "arrayAll", "arraySum", "arrayCount", "arrayFirst", "arrayLast", "arrayFirstIndex",
    "arrayLastIndex", "arrayMin", "arrayMax", "arrayAvg", "arrayCumSum", "arrayReverseSort", "arraySplit",
    "arrayFill", "arrayReverseFill", "nth_value", "ntile", "percent_rank", "cume_dist",
)})

_TYPE_RE = re.compile(r"^[A-Za-z0-9_(), ']{1,80}$")


class Printer:
    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        # Equal values share one placeholder: shorter SQL, and ClickHouse sees repeated
        # expressions (e.g. one property read three times) as one and computes them once.
        self._names: dict[tuple[str, str, str], str] = {}

    def print(self, node: ir.Select) -> tuple[str, dict[str, Any]]:
        return self.visit(node), self.params

    def visit(self, node: Any) -> str:
        method = getattr(self, f"visit_{type(node).__name__.lower()}", None)
        if method is None:
            raise TypeError(f"cannot print {type(node).__name__}")
        return method(node)

    @staticmethod
    def ident(name: str) -> str:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"invalid identifier: {name!r}")
        return f"`{name}`"

    def visit_param(self, node: ir.Param) -> str:
        if not _TYPE_RE.match(node.ch_type):
            raise ValueError(f"invalid parameter type: {node.ch_type!r}")
        key = (node.ch_type, type(node.value).__name__, repr(node.value))
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"p{len(self.params)}"
            self.params[name] = node.value
        return f"{{{name}:{node.ch_type}}}"

    def visit_const(self, node: ir.Const) -> str:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("Const must be a number")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("Const must be finite")
            return repr(float(value))
        return str(int(value))

    def visit_null(self, node: ir.Null) -> str:
        return "NULL"

    def visit_column(self, node: ir.Column) -> str:
        col = self.ident(node.name)
        return f"{self.ident(node.table)}.{col}" if node.table else col

    def visit_call(self, node: ir.Call) -> str:
        if node.fn not in FUNCTIONS:
            raise ValueError(f"function not allowed: {node.fn!r}")
        params = f"({', '.join(self.visit(p) for p in node.params)})" if node.params else ""
        distinct = "DISTINCT " if node.distinct else ""
        return f"{FUNCTIONS[node.fn]}{params}({distinct}{', '.join(self.visit(a) for a in node.args)})"

    def visit_lambda(self, node: ir.Lambda) -> str:
        args = ", ".join(self.ident(a) for a in node.args)
        return f"(({args}) -> {self.visit(node.body)})"

    def visit_binop(self, node: ir.BinOp) -> str:
        return f"({self.visit(node.left)} {node.op.value} {self.visit(node.right)})"

    def visit_and(self, node: ir.And) -> str:
        return "(" + " AND ".join(self.visit(i) for i in node.items) + ")"

    def visit_or(self, node: ir.Or) -> str:
        return "(" + " OR ".join(self.visit(i) for i in node.items) + ")"

    def visit_not(self, node: ir.Not) -> str:
        return f"(NOT {self.visit(node.expr)})"

    def visit_isnull(self, node: ir.IsNull) -> str:
        return f"({self.visit(node.expr)} IS {'NOT ' if node.negated else ''}NULL)"

    def visit_arrayexpr(self, node: ir.ArrayExpr) -> str:
        return "[" + ", ".join(self.visit(i) for i in node.items) + "]"

    def visit_alias(self, node: ir.Alias) -> str:
        return f"{self.visit(node.expr)} AS {self.ident(node.name)}"

    def visit_orderby(self, node: ir.OrderBy) -> str:
        return f"{self.visit(node.expr)} {ir.Direction(node.direction).value}"

    def visit_window(self, node: ir.Window) -> str:
        parts = []

        if node.partition_by:
            parts.append("PARTITION BY " + ", ".join(self.visit(e) for e in node.partition_by))
        if node.order_by:
            parts.append("ORDER BY " + ", ".join(self.visit(o) for o in node.order_by))
        if node.frame is not None:
            parts.append(self.visit(node.frame))
        return f"{self.visit(node.call)} OVER ({' '.join(parts)})"

    def visit_framebound(self, node: ir.FrameBound) -> str:
        kind = ir.BoundKind(node.kind)
        if kind in (ir.BoundKind.PRECEDING, ir.BoundKind.FOLLOWING):
            if isinstance(node.offset, bool) or not isinstance(node.offset, int) or node.offset < 0:
                raise ValueError("a frame offset must be a non-negative int")
            return f"{int(node.offset)} {kind.value}"
        return kind.value

    def visit_windowframe(self, node: ir.WindowFrame) -> str:
        kind = ir.FrameKind(node.kind).value
        if node.end is None:
            return f"{kind} {self.visit(node.start)}"
        return f"{kind} BETWEEN {self.visit(node.start)} AND {self.visit(node.end)}"

    def visit_table(self, node: ir.Table) -> str:
        return self.ident(node.name)

    def visit_sample(self, node: ir.Sample) -> str:
        return f"SAMPLE {int(node.numerator)}/{int(node.denominator)}"

    def visit_join(self, node: ir.Join) -> str:
        source = self.visit(node.source)
        if isinstance(node.source, ir.Select):
            source = f"({source})"
        kind = ir.JoinKind(node.kind)
        if (kind == ir.JoinKind.CROSS) != (node.on is None):
            raise ValueError("a CROSS JOIN has no ON; every other join needs one")
        on = "" if node.on is None else f" ON {self.visit(node.on)}"
        return f"{kind.value} {source} AS {self.ident(node.alias)}{on}"

    def visit_select(self, node: ir.Select) -> str:
        lines = [("SELECT DISTINCT " if node.distinct else "SELECT ") + ", ".join(self.visit(c) for c in node.columns)]
        if node.from_ is not None:
            source = self.visit(node.from_)
            if isinstance(node.from_, ir.Select):
                source = f"(\n{source}\n)"
            alias = f" AS {self.ident(node.from_alias)}" if node.from_alias else ""
            sample = f" {self.visit(node.sample)}" if node.sample else ""
            lines.append(f"FROM {source}{alias}{sample}")
        lines.extend(self.visit(j) for j in node.joins)
        if node.where is not None:
            lines.append(f"WHERE {self.visit(node.where)}")
        if node.group_by:
            lines.append("GROUP BY " + ", ".join(self.visit(g) for g in node.group_by))
        if node.having is not None:
            lines.append(f"HAVING {self.visit(node.having)}")
        if node.order_by:
            lines.append("ORDER BY " + ", ".join(self.visit(o) for o in node.order_by))
        if node.limit is not None:
            lines.append(f"LIMIT {int(node.limit)}")
        if node.offset is not None:
            lines.append(f"OFFSET {int(node.offset)}")
        if node.settings:
            lines.append("SETTINGS " + ", ".join(f"{self.ident(k)[1:-1]} = {int(v)}" for k, v in node.settings))
        return "\n".join(lines)

    def visit_unionselect(self, node: ir.UnionSelect) -> str:
        kind = ir.SetKind(node.kind)
        if kind == ir.SetKind.UNION:
            glue = "\nUNION DISTINCT\n" if node.distinct else "\nUNION ALL\n"
        else:  # ClickHouse's plain INTERSECT/EXCEPT keep duplicates; DISTINCT removes them
            glue = f"\n{kind.value} DISTINCT\n" if node.distinct else f"\n{kind.value}\n"
        return glue.join(self.visit(ir.Subquery(i)) if isinstance(i, ir.UnionSelect) else self.visit(i)
                         for i in node.items)

    def visit_subquery(self, node: ir.Subquery) -> str:
        return f"(\n{self.visit(node.query)}\n)"


def print_select(node: ir.Select) -> tuple[str, dict[str, Any]]:
    return Printer().print(node)

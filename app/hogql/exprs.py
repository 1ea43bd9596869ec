"""Expression lowering for HogQL (a mixin of `lower.Lowerer`): literals → parameters, operators →
IR nodes, calls → the allowlist of functions.py, fields → the catalog of tables.py."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from app import clock
from app.hogql import functions as F
from app.hogql.calls import WindowsAndLambdas
from app.hogql.parse import PLACEHOLDER_PREFIX, VARIABLE_PREFIX
from app.hogql.tables import EVENT_COLUMNS, EVENT_TIMESTAMPS, FIELDS, HAS_PROPERTIES, json_path
from app.models.definitions import EVENT_PROPERTY, PERSON_PROPERTY
from app.query_engine import ir

if TYPE_CHECKING:
    from app.hogql.lower import Ctx, Source

_CMP = {exp.EQ: ir.Op.EQ, exp.NEQ: ir.Op.NE, exp.LT: ir.Op.LT, exp.LTE: ir.Op.LTE, exp.GT: ir.Op.GT,
        exp.GTE: ir.Op.GTE, exp.Add: ir.Op.ADD, exp.Sub: ir.Op.SUB, exp.Mul: ir.Op.MUL, exp.Div: ir.Op.DIV}
_CASTS = {"string": "toString", "text": "toString", "float": "toFloat", "double": "toFloat", "int": "toInt",
          "bigint": "toInt", "date": "toDate", "datetime": "toDateTime", "boolean": "toBool"}
_INTERVALS = {"second", "minute", "hour", "day", "week", "month", "quarter", "year"}


def int_type(value: int) -> str:
    """The type ClickHouse gives an integer literal (PostHog prints numbers inline): the smallest
    unsigned type for values >= 0, the smallest signed one otherwise, so `if(1, …)` takes a UInt8."""
    bits = next((b for b in (8, 16, 32, 64) if (0 <= value < 2**b if value >= 0 else -2**(b - 1) <= value)), 64)
    if value >= 0:
        return f"UInt{bits}"
    return f"Int{bits}"


class Expressions(WindowsAndLambdas):
    """Needs from its host: `fail`, `query`, `order`, `tz`, `property_types`, `values`, `variables`."""

    # --- expressions -----------------------------------------------------------------------------

    def expr(self, node: exp.Expression, ctx: Ctx) -> ir.Expr:
        if isinstance(node, exp.Literal):
            return self.literal(node)
        if isinstance(node, exp.Boolean):
            return ir.Param(bool(node.this), "Bool")
        if isinstance(node, exp.Null):
            return ir.Null()
        if isinstance(node, exp.Paren):
            return self.expr(node.this, ctx)
        if isinstance(node, exp.Neg):
            inner = self.expr(node.this, ctx)
            if isinstance(inner, ir.Param) and isinstance(inner.value, (int, float)):
                value = -inner.value
                return ir.Param(value, int_type(value) if isinstance(value, int) else "Float64")
            return ir.BinOp(ir.Op.SUB, ir.Const(0), inner)
        if type(node) in _CMP:
            return ir.BinOp(_CMP[type(node)], self.expr(node.this, ctx), self.expr(node.expression, ctx))
        if isinstance(node, exp.Mod):
            return ir.call("modulo", self.expr(node.this, ctx), self.expr(node.expression, ctx))
        if isinstance(node, (exp.And, exp.Or)):
            items = (self.expr(node.this, ctx), self.expr(node.expression, ctx))
            return ir.And(items) if isinstance(node, exp.And) else ir.Or(items)
        if isinstance(node, exp.Not):
            return ir.Not(self.expr(node.this, ctx))
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise self.fail("IS is only supported with NULL", node)
            return ir.IsNull(self.expr(node.this, ctx))
        if isinstance(node, (exp.Like, exp.ILike)):
            fn = ("notLike" if node.args.get("negate") else "like") if isinstance(node, exp.Like) else (
                "notILike" if node.args.get("negate") else "ilike")
            if node.args.get("escape"):
                raise self.fail("LIKE … ESCAPE is not supported", node)
            return ir.call(fn, self.expr(node.this, ctx), self.expr(node.expression, ctx))
        if isinstance(node, exp.In):
            return self.in_(node, ctx)
        if isinstance(node, exp.Between):
            v = self.expr(node.this, ctx)
            return ir.And((ir.BinOp(ir.Op.GTE, v, self.expr(node.args["low"], ctx)),
                           ir.BinOp(ir.Op.LTE, v, self.expr(node.args["high"], ctx))))
        if isinstance(node, exp.If):
            return ir.call("if", self.expr(node.this, ctx), self.expr(node.args["true"], ctx),
                           self.expr(node.args["false"], ctx) if node.args.get("false") else ir.Null())
        if isinstance(node, exp.Case):
            return self.case(node, ctx)
        if isinstance(node, exp.Array):
            return ir.ArrayExpr(tuple(self.expr(e, ctx) for e in node.expressions))
        if isinstance(node, exp.Tuple):
            return ir.call("tuple", *(self.expr(e, ctx) for e in node.expressions))
        if isinstance(node, exp.Interval):
            return self.interval(node, ctx)
        if isinstance(node, exp.Cast):
            target = node.to.sql(dialect="clickhouse").lower().split("(")[0]
            mapped = next((v for k, v in _CASTS.items() if target.startswith(k) or target.startswith(f"nullable")
                           and k in target), None) or ("toInt" if target.startswith(("int", "uint")) else None)
            if mapped is None:
                raise self.fail(f"Cast to {target!r} is not supported; use toString, toInt, toFloat or toDateTime",
                                node)
            return self.special(mapped, [node.this], ctx, node)
        if isinstance(node, (exp.Column, exp.Dot, exp.Bracket)):
            return self.field(node, ctx)
        if isinstance(node, exp.Identifier):  # sqlglot leaves a lambda's arguments bare in its body
            if node.name in ctx.lambdas:
                return ir.Column(ctx.lambdas[node.name])
            raise self.fail(f"Unable to resolve field: {node.name[:120]}", node)
        if isinstance(node, exp.Lambda):
            raise self.fail("A lambda (x -> …) is only allowed as the first argument of "
                            + ", ".join(sorted(F.HIGHER_ORDER)), node)
        if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc, exp.CombinedAggFunc, exp.ParameterizedAgg)):
            return self.function(node, ctx)
        if isinstance(node, exp.Window):
            return self.window(node, ctx)
        if isinstance(node, (exp.Subquery, exp.Select, exp.Union)):
            return ir.Subquery(self.query(node, ctx.ctes)[0])
        raise self.fail(f"Unsupported syntax {node.key.upper()}", node)

    def literal(self, node: exp.Literal) -> ir.Param:
        if node.is_string:
            return ir.string(node.this)
        text = node.this
        try:
            if text.isdigit():
                value = int(text)
                if value >= 2**64:
                    raise ValueError
                return ir.Param(value, int_type(value))
            number = float(text)
        except ValueError:
            raise self.fail(f"Invalid number {text[:40]!r}", node) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise self.fail("Numbers must be finite", node)
        return ir.Param(number, "Float64")

    def in_(self, node: exp.In, ctx: Ctx) -> ir.Expr:
        left = self.expr(node.this, ctx)
        if node.args.get("query") is not None:
            right: ir.Expr = ir.Subquery(self.query(node.args["query"], ctx.ctes)[0])
        elif node.expressions:
            right = ir.call("tuple", *(self.expr(e, ctx) for e in node.expressions))
        elif isinstance(node.args.get("field"), exp.Column) and node.args["field"].name.startswith(
                (PLACEHOLDER_PREFIX, VARIABLE_PREFIX)):
            # `x IN {ids}` only: ClickHouse would read `x IN name` as a whole table.
            marker = node.args["field"].name
            right = self.placeholder(marker[len(PLACEHOLDER_PREFIX):], node) if marker.startswith(
                PLACEHOLDER_PREFIX) else self.variable(marker[len(VARIABLE_PREFIX):], node)
            if not (isinstance(right, ir.Call) and right.fn == "tuple"):
                right = ir.call("tuple", right)
        else:
            raise self.fail("Unsupported IN form; use IN (…) or IN (SELECT …)", node)
        return ir.BinOp(ir.Op.IN, left, right)

    def case(self, node: exp.Case, ctx: Ctx) -> ir.Expr:
        subject = self.expr(node.this, ctx) if node.this is not None else None
        args: list[ir.Expr] = []
        for branch in node.args.get("ifs") or []:
            cond = self.expr(branch.this, ctx)
            args += [ir.eq(subject, cond) if subject is not None else cond, self.expr(branch.args["true"], ctx)]
        default = node.args.get("default")
        args.append(self.expr(default, ctx) if default is not None else ir.Null())
        return ir.call("multiIf", *args) if len(args) > 1 else args[0]

    def interval(self, node: exp.Interval, ctx: Ctx) -> ir.Expr:
        unit = (node.unit.name if node.unit else "").lower().rstrip("s")
        if unit not in _INTERVALS:
            raise self.fail(f"Unsupported interval unit {unit!r}", node)
        value = node.this
        if isinstance(value, exp.Literal) and value.is_string and value.this.strip().isdigit():
            amount: ir.Expr = ir.Param(int(value.this.strip()), "Int64")
        else:
            amount = self.expr(value, ctx)
        return ir.call(f"toInterval{unit.capitalize()}", amount)

    def function(self, node: exp.Expression, ctx: Ctx, over: bool = False) -> ir.Expr:
        raw = node.this if isinstance(node.this, str) else node.name
        name = F.canonical(raw)
        if name is None:
            raise self.fail(f"Unsupported function call '{raw[:60]}(...)'", node)
        if name in F.WINDOW_ONLY and not over:
            raise self.fail(f"{name}() is a window function; it needs OVER (…)", node)
        if name in F.HIGHER_ORDER and not isinstance(node, exp.ParameterizedAgg):
            return self.higher_order(name, list(node.expressions), ctx, node)
        # sqlglot keeps quantile(0.9)(x) as expressions=[0.9] (levels), params=[x] (arguments).
        levels = list(node.expressions) if isinstance(node, exp.ParameterizedAgg) else []
        args = list(node.args.get("params") or []) if isinstance(node, exp.ParameterizedAgg) else list(node.expressions)
        distinct = False
        if len(args) == 1 and isinstance(args[0], exp.Distinct):
            if name not in ("count", "uniq", "uniqExact", "sum", "avg", "groupArray"):
                raise self.fail(f"DISTINCT is not supported in {name}()", node)
            distinct, args = True, list(args[0].expressions)
        if name == "count" and len(args) == 1 and isinstance(args[0], exp.Star):
            args = []
        if name in F.SPECIAL:
            return self.special(name, args, ctx, node)
        fn = F.lookup(name)
        if fn is None:  # a lambda or window-alias name written in another form, e.g. arrayMap(1)(x)
            raise self.fail(f"{name}() cannot be called this way", node)
        self.arity(name, fn.min_args, fn.max_args, len(args), node)
        params: tuple[ir.Const, ...] = ()
        if isinstance(node, exp.ParameterizedAgg) != (name in F.PARAMETRIC):
            raise self.fail(f"{name}() {'needs' if name in F.PARAMETRIC else 'takes no'} level parameters, e.g. "
                            "quantile(0.9)(x)", node)
        if name in F.PARAMETRIC:
            params = tuple(self.level(p) for p in levels)
            if not params or (name == "quantile" and len(params) != 1) or len(params) > 20:
                raise self.fail(f"{name}() needs {'one level' if name == 'quantile' else 'levels'} between 0 and 1",
                                node)
        return ir.Call(fn.ch, tuple(self.expr(a, ctx) for a in args), params, distinct)

    def level(self, node: exp.Expression) -> ir.Const:
        try:
            value = float(node.this) if isinstance(node, exp.Literal) and not node.is_string else None
        except ValueError:
            value = None
        if value is None or not 0 <= value <= 1:
            raise self.fail("A quantile level must be a number between 0 and 1", node)
        return ir.Const(value)

    def arity(self, name: str, lo: int, hi: int, got: int, node: exp.Expression) -> None:
        if not lo <= got <= hi:
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi >= F.INF else f"{lo} to {hi}")
            raise self.fail(f"Function {name}() takes {want} argument{'s' if hi != 1 else ''}, got {got}", node)

    def special(self, name: str, args: list, ctx: Ctx, node: exp.Expression) -> ir.Expr:
        lo, hi = F.SPECIAL[name]
        self.arity(name, lo, hi, len(args), node)
        if name in ("now", "today"):
            # A frozen application clock (APP_FROZEN_NOW, tests) holds in SQL too: its instant is a
            # parameter; otherwise the engine's own now64().
            pinned = clock.frozen()
            current = (ir.call("toTimeZone", ir.Param(pinned, "DateTime64(6, 'UTC')"), self.tz) if pinned is not None
                       else ir.call("now64", ir.Const(6), self.tz))
            return current if name == "now" else ir.call("toDate", current)
        value = self.expr(args[0], ctx)
        if name == "toString":
            return ir.call("toString", value)
        if name == "toDateTime":
            # Strings are read in the project timezone; DateTimes keep their instant.
            return ir.call("toDateTime64", value, ir.Const(6), self.tz)
        target = {"toInt": "Int64", "toFloat": "Float64", "toBool": "Bool"}[name]
        return ir.call("accurateCastOrNull", value, ir.string(target))

    # --- fields ----------------------------------------------------------------------------------

    def parts(self, node: exp.Expression) -> list:
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                raise self.fail("* is not supported here", node)
            return [p.name for p in reversed([node.this, *(node.args.get(k) for k in ("table", "db", "catalog"))])
                    if p is not None]
        if isinstance(node, exp.Dot):
            return [*self.parts(node.this), node.expression.name]
        if isinstance(node, exp.Bracket):
            keys = node.expressions
            if len(keys) != 1 or not isinstance(keys[0], exp.Literal):
                raise self.fail("Property access with [] needs one string or number literal", node)
            key = keys[0].this if keys[0].is_string else int(keys[0].this) if keys[0].this.isdigit() else None
            if key is None:
                raise self.fail("Property access with [] needs one string or number literal", node)
            return [*self.parts(node.this), key]
        raise self.fail("Unsupported field access", node)

    def field(self, node: exp.Expression, ctx: Ctx) -> ir.Expr:
        parts = self.parts(node)
        if len(parts) == 1 and str(parts[0]).startswith(PLACEHOLDER_PREFIX):
            return self.placeholder(str(parts[0])[len(PLACEHOLDER_PREFIX):], node)
        if len(parts) == 1 and str(parts[0]).startswith(VARIABLE_PREFIX):
            return self.variable(str(parts[0])[len(VARIABLE_PREFIX):], node)
        if len(parts) == 1 and parts[0] in ctx.lambdas:
            return ir.Column(ctx.lambdas[parts[0]])
        if isinstance(parts[0], str) and len(parts) > 1 and parts[0] in ctx.sources:
            return self.source_field(ctx.sources[parts[0]], parts[1:], node)
        if len(parts) == 1 and parts[0] in ctx.aliases:
            return ir.Column(ctx.aliases[parts[0]])
        for src in ctx.order:
            if self.has_field(src, parts[0]):
                return self.source_field(src, parts, node)
        raise self.fail(f"Unable to resolve field: {'.'.join(map(str, parts))[:120]}", node)

    def placeholder(self, name: str, node: exp.Expression) -> ir.Expr:
        if name not in self.values:
            raise self.fail(f"No value for the placeholder {{{name}}} in `values`", node)
        return self.bound_value(self.values[name], name, node)

    def variable(self, code_name: str, node: exp.Expression) -> ir.Expr:
        """`{variables.code_name}`: the request's variable with that code_name, as a parameter. `isNull`
        or no value gives NULL (Tally stores no variable definitions, so there is no saved default)."""
        entry = self.variables.get(code_name)
        if entry is None:
            close = difflib.get_close_matches(code_name, list(self.variables), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise self.fail(f"Variable {code_name!r} is used in the query but missing from `variables` (no entry "
                            f"has that code_name)", node, attr=self.variables_attr, suffix=hint)
        if entry.get("isNull") or entry.get("value") is None:
            return ir.Null()
        return self.bound_value(entry["value"], f"variables.{code_name}", node)

    def bound_value(self, value: Any, name: str, node: exp.Expression) -> ir.Expr:
        if isinstance(value, list):
            if not value or len(value) > 1000:
                raise self.fail(f"The value of {{{name}}} must be a list of 1 to 1000 items", node)
            return ir.call("tuple", *(self.scalar(v, name, node) for v in value))
        return self.scalar(value, name, node)

    def scalar(self, value: Any, name: str, node: exp.Expression) -> ir.Expr:
        if value is None:
            return ir.Null()
        if isinstance(value, bool):
            return ir.Param(value, "Bool")
        if isinstance(value, int) and -2**63 <= value < 2**63:
            return ir.Param(value, int_type(value))
        if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
            return ir.Param(value, "Float64")
        if isinstance(value, str):
            return ir.string(value)
        raise self.fail(f"The value of {{{name}}} must be a string, number, boolean, null or a list of those", node)

    def has_field(self, src: Source, first: Any) -> bool:
        if src.table == "subquery":
            return first in src.outputs
        if src.table == "events":
            return first in EVENT_COLUMNS or first in EVENT_TIMESTAMPS or first in ("properties", "person")
        return first in FIELDS[src.table] or (first == "properties" and src.table in HAS_PROPERTIES)

    def source_field(self, src: Source, parts: list, node: exp.Expression) -> ir.Expr:
        first, rest = parts[0], parts[1:]
        bad = self.fail(f"Unable to resolve field: {'.'.join(map(str, parts))[:120]}", node)
        if src.table == "subquery":
            if first not in src.outputs or rest:
                raise bad
            return ir.Column(src.outputs[first], src.alias)
        if src.table == "events":
            hooks = src.hooks
            assert hooks is not None
            if first in EVENT_COLUMNS and not rest:
                return hooks.person_id() if first == "person_id" else hooks.col(first)
            if first in EVENT_TIMESTAMPS and not rest:
                return ir.call("toTimeZone", hooks.col(first), self.tz)
            if first == "properties":
                return self.props(hooks.col("properties"), rest, EVENT_PROPERTY)
            if first == "person" and rest:
                if rest == ["id"]:
                    return hooks.person_id()
                if rest == ["created_at"]:
                    return ir.call("toTimeZone", hooks.col("person_created_at"), self.tz)
                if rest[0] == "properties":
                    return self.props(hooks.person_properties(), rest[1:], PERSON_PROPERTY)
            raise bad
        if first == "properties" and src.table in HAS_PROPERTIES:
            return self.props(ir.Column("properties", src.alias), rest,
                              PERSON_PROPERTY if src.table == "persons" else None)
        if first not in FIELDS[src.table] or rest:
            raise bad
        column, is_time = FIELDS[src.table][first]
        col = ir.Column(column, src.alias)
        return ir.call("toTimeZone", col, self.tz) if is_time else col

    def props(self, source: ir.Expr, keys: list, kind: int | None) -> ir.Expr:
        if not keys:
            return source
        numeric = (kind is not None and len(keys) == 1
                   and self.property_types.get((kind, -1, str(keys[0]))) in ("Numeric", "Duration"))
        return json_path(source, keys, numeric)

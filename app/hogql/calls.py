"""Window functions (frames, named windows) and lambdas of higher-order array functions, for the
expression lowering of exprs.py (a mixin of `lower.Lowerer`)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from app.hogql import functions as F
from app.query_engine import ir

if TYPE_CHECKING:
    from app.hogql.lower import Ctx

_LAMBDA_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_FRAME_OFFSET = 1_000_000_000
_FULL_FRAME = ir.WindowFrame(ir.FrameKind.ROWS, ir.FrameBound(ir.BoundKind.UNBOUNDED_PRECEDING),
                             ir.FrameBound(ir.BoundKind.UNBOUNDED_FOLLOWING))


class WindowsAndLambdas:
    """Needs from its host: `fail`, `expr`, `order`, `function`, `arity`, `lambda_n`."""

    def window(self, node: exp.Window, ctx: Ctx) -> ir.Expr:
        """`f(…) OVER (PARTITION BY … ORDER BY … ROWS|RANGE …)`, or `OVER w` naming a WINDOW clause."""
        if node.args.get("first") is not None:
            raise self.fail("IGNORE/RESPECT NULLS is not supported", node)
        partition, order, spec = node.args.get("partition_by"), node.args.get("order"), node.args.get("spec")
        alias = node.args.get("alias")
        if alias is not None:  # OVER w, or OVER (w ORDER BY …) adding to it
            named = ctx.windows.get(alias.name)
            if named is None:
                raise self.fail(f"Unknown window {alias.name[:60]!r}; define it with WINDOW {alias.name[:60]} AS (…)",
                                node)
            if (partition and named.args.get("partition_by")) or (order and named.args.get("order")) or (
                    spec and named.args.get("spec")):
                raise self.fail(f"OVER ({alias.name[:60]} …) cannot override a clause the window already has", node)
            partition = partition or named.args.get("partition_by")
            order = order or named.args.get("order")
            spec = spec or named.args.get("spec")
        fn = node.this
        raw = None
        if isinstance(fn, (exp.Anonymous, exp.AnonymousAggFunc)):
            raw = fn.this if isinstance(fn.this, str) else fn.name
        frame = self.frame(spec) if spec is not None else None
        if raw is not None and F.canonical(raw) in F.WINDOW_ALIASES:
            name = F.canonical(raw)
            args = list(fn.expressions)
            self.arity(name, 1, 3, len(args), fn)
            call: ir.Expr = ir.Call(F.WINDOW_ALIASES[name], tuple(self.expr(a, ctx) for a in args))
            frame = frame or _FULL_FRAME
        else:
            call = self.function(fn, ctx, over=True) if isinstance(
                fn, (exp.Anonymous, exp.AnonymousAggFunc, exp.CombinedAggFunc, exp.ParameterizedAgg)) else None
        if not isinstance(call, ir.Call):
            raise self.fail("OVER needs a function call", node)
        return ir.Window(call, tuple(self.expr(e, ctx) for e in partition or []),
                         tuple(self.order(o, ctx) for o in (order.expressions if order else [])), frame)

    def frame(self, spec: exp.Expression) -> ir.WindowFrame:
        if spec.args.get("exclude"):
            raise self.fail("EXCLUDE in a window frame is not supported", spec)
        kind = str(spec.args.get("kind") or "").upper()
        if kind not in ("ROWS", "RANGE"):
            raise self.fail("A window frame must be ROWS or RANGE", spec)
        start = self.bound(spec.args.get("start"), spec.args.get("start_side"), spec)
        end = spec.args.get("end")
        return ir.WindowFrame(ir.FrameKind(kind), start,
                              self.bound(end, spec.args.get("end_side"), spec) if end is not None else None)

    def bound(self, value: Any, side: Any, spec: exp.Expression) -> ir.FrameBound:
        side = str(side or "").upper()
        if isinstance(value, str) and value.upper() == "CURRENT ROW":
            return ir.FrameBound(ir.BoundKind.CURRENT_ROW)
        if side not in ("PRECEDING", "FOLLOWING"):
            raise self.fail("A frame bound must be UNBOUNDED PRECEDING/FOLLOWING, CURRENT ROW or "
                            "<n> PRECEDING/FOLLOWING", spec)
        if isinstance(value, str) and value.upper() == "UNBOUNDED":
            return ir.FrameBound(ir.BoundKind.UNBOUNDED_PRECEDING if side == "PRECEDING"
                                 else ir.BoundKind.UNBOUNDED_FOLLOWING)
        if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit() \
                and int(value.this) <= _MAX_FRAME_OFFSET:
            return ir.FrameBound(ir.BoundKind(side), int(value.this))
        raise self.fail(f"A frame offset must be a whole number up to {_MAX_FRAME_OFFSET}", spec)

    def lambda_(self, node: exp.Expression, arrays: int, name: str, ctx: Ctx) -> ir.Lambda:
        if not isinstance(node, exp.Lambda):
            raise self.fail(f"{name}() needs a lambda first, e.g. {name}(x -> x * 2, arr)", node)
        params = [p.name if isinstance(p, (exp.Identifier, exp.Column)) and not isinstance(p.this, exp.Star)
                  else None for p in node.expressions]
        for p in params:
            if p is None or not _LAMBDA_ARG.match(p):
                raise self.fail("Lambda arguments must be plain names (letters, digits, underscore)", node)
        if len(set(params)) != len(params):
            raise self.fail("Lambda arguments must have distinct names", node)
        if len(params) != arrays:
            raise self.fail(f"The lambda of {name}() takes one argument per array: {arrays}, got {len(params)}", node)
        generated = {}
        for p in params:
            self.lambda_n += 1
            generated[p] = f"lambda_{self.lambda_n}"
        inner = replace(ctx, lambdas={**ctx.lambdas, **generated})
        return ir.Lambda(tuple(generated.values()), self.expr(node.this, inner))

    def higher_order(self, name: str, args: list, ctx: Ctx, node: exp.Expression) -> ir.Expr:
        spec = F.HIGHER_ORDER[name]
        has_lambda = bool(args) and isinstance(args[0], exp.Lambda)
        if not has_lambda:
            if spec.lambda_required:
                raise self.fail(f"{name}() needs a lambda first, e.g. {name}(x -> x * 2, arr)", node)
            self.arity(name, 1, 1, len(args), node)
            return ir.Call(name, (self.expr(args[0], ctx),))
        arrays = args[1:]
        if not 1 <= len(arrays) <= spec.max_arrays:
            raise self.fail(f"Function {name}() takes a lambda and 1 to {spec.max_arrays} arrays, got {len(arrays)}",
                            node)
        fn = self.lambda_(args[0], len(arrays), name, ctx)
        return ir.Call(name, (fn, *(self.expr(a, ctx) for a in arrays)))

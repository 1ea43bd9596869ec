"""Entry points: compile a HogQLQuery or a HogQL expression, and run a HogQLQuery."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import re

from app.hogql.lower import DEFAULT_LIMIT, DEFAULT_POE_MODE, MAX_ROWS, Ctx, Lowerer, Source
from app.hogql.parse import MAX_LENGTH, HogQLError, parse_expr, parse_select
from app.hogql.tables import EventsHooks
from app.query_engine import ir
from app.query_engine.printer import print_select
from app.query_engine.scope import EVENTS_ALIAS, Scope
from app.schemas.query.base import PersonsOnEventsMode

_CODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def index_variables(raw: Any, attr: str) -> dict[str, dict[str, Any]]:
    """HogQLQuery `variables` ({variableId: {variableId, code_name, value, isNull?}}) by code_name."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HogQLError("`variables` must be an object of {variableId: {code_name, value}}.", attr=attr)
    out: dict[str, dict[str, Any]] = {}
    for key, entry in raw.items():
        code = entry.get("code_name") if isinstance(entry, dict) else None
        if not isinstance(code, str) or not _CODE_NAME.match(code):
            raise HogQLError("Each variable needs a `code_name` made of letters, digits and underscores.",
                             attr=f"{attr}.{str(key)[:60]}")
        if code in out:
            raise HogQLError(f"Two variables have the code_name {code!r}.", attr=f"{attr}.{str(key)[:60]}")
        out[code] = entry
    return out


def compile_query(text: str, *, team_id: int, timezone: str, property_types: dict, attr: str = "query.query",
                  values: dict[str, Any] | None = None, variables: Any = None, variables_attr: str | None = None,
                  poe_mode: PersonsOnEventsMode = DEFAULT_POE_MODE, max_length: int = MAX_LENGTH,
                  ) -> tuple[ir.Select, list[str], int]:
    """(IR fetching one row more than the limit, column names, the limit)."""
    variables_attr = variables_attr or attr.rsplit(".", 1)[0] + ".variables"
    indexed = index_variables(variables, variables_attr)
    tree = parse_select(text, attr, max_length=max_length)
    lowerer = Lowerer(team_id=team_id, timezone=timezone, property_types=property_types, attr=attr, values=values,
                      variables=indexed, variables_attr=variables_attr, poe_mode=poe_mode)
    user_limit = lowerer.count(tree.args.get("limit"), "LIMIT")
    offset = lowerer.count(tree.args.get("offset"), "OFFSET")
    limit = min(user_limit if user_limit is not None else DEFAULT_LIMIT, MAX_ROWS)
    body, names = lowerer.query(tree, {}, top=True)
    if isinstance(body, ir.UnionSelect):
        order = tree.args.get("order")
        if order is not None:
            raise HogQLError("ORDER BY on a top-level UNION/INTERSECT/EXCEPT is not supported; wrap it in a "
                             "subquery.",
                             attr=attr)
        columns = tuple(ir.Column(f"c{i}") for i in range(len(names)))
        return ir.Select(columns=columns, from_=ir.Subquery(body), limit=limit + 1, offset=offset), names, limit
    # hasMore: fetch one row more than the limit.
    return ir.Select(**{**body.__dict__, "limit": limit + 1, "offset": offset}), names, limit


def compile_expr(text: str, scope: Scope, attr: str) -> ir.Expr:
    """A HogQL expression over the events of a trends series (alias `e` of the scope)."""
    tree = parse_expr(text, attr)
    lowerer = Lowerer(team_id=scope.team_id, timezone=scope.timezone, property_types=scope.property_types, attr=attr,
                      col_shift=len("SELECT "), poe_mode=scope.poe_mode)
    src = Source(EVENTS_ALIAS, "events", hooks=EventsHooks(scope.col, scope.person_properties, scope.person_id))
    ctx = Ctx(sources={"events": src}, order=[src])
    return lowerer.expr(tree, ctx)


Execute = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def run_hogql(text: str, *, team_id: int, timezone: str, property_types: dict, execute: Execute,
                    attr: str = "query.query", values: dict[str, Any] | None = None, variables: Any = None,
                    poe_mode: PersonsOnEventsMode = DEFAULT_POE_MODE, max_length: int = MAX_LENGTH) -> dict[str, Any]:
    select, names, limit = compile_query(text, team_id=team_id, timezone=timezone, property_types=property_types,
                                         attr=attr, values=values, variables=variables, poe_mode=poe_mode,
                                         max_length=max_length)
    sql, params = print_select(select)
    started = time.perf_counter()
    result = await execute(sql, params)
    rows = [list(r) for r in result.rows]
    return {
        "results": rows[:limit], "hasMore": len(rows) > limit, "columns": names,
        "types": [[n, t] for n, t in zip(names, result.types)], "hogql": text, "clickhouse": sql,
        "limit": limit, "offset": select.offset or 0,
        "timings": [{"k": "execute", "t": round(time.perf_counter() - started, 6)}],
    }

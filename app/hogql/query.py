"""Entry points: compile a HogQLQuery or a HogQL expression, and run a HogQLQuery."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    """(IR, column names, the page size when PostHog paginates — no LIMIT of the user's: the IR
    fetches one row more to tell hasMore — else None)."""
    variables_attr = variables_attr or attr.rsplit(".", 1)[0] + ".variables"
    indexed = index_variables(variables, variables_attr)
    tree = parse_select(text, attr, max_length=max_length)
    lowerer = Lowerer(team_id=team_id, timezone=timezone, property_types=property_types, attr=attr, values=values,
                      variables=indexed, variables_attr=variables_attr, poe_mode=poe_mode)
    user_limit = lowerer.count(tree.args.get("limit"), "LIMIT")
    offset = lowerer.count(tree.args.get("offset"), "OFFSET")
    body, names = lowerer.query(tree, {}, top=True)
    if isinstance(body, ir.UnionSelect):
        order = tree.args.get("order")
        if order is not None:
            raise HogQLError("ORDER BY on a top-level UNION/INTERSECT/EXCEPT is not supported; wrap it in a "
                             "subquery.",
                             attr=attr)
        # PostHog gives every SELECT of a set query without its own LIMIT the default 100 rows and
        # caps the whole at 50 000; no pagination, so no hasMore/limit/offset.
        columns = tuple(ir.Column(f"c{i}") for i in range(len(names)))
        limit = min(user_limit, MAX_ROWS) if user_limit is not None else MAX_ROWS
        return ir.Select(columns=columns, from_=ir.Subquery(_default_limits(body)), limit=limit,
                         offset=offset), names, None
    if user_limit is not None:
        # A query with its own LIMIT runs as written (capped at 50 000): PostHog reports no hasMore.
        return ir.Select(**{**body.__dict__, "limit": min(user_limit, MAX_ROWS), "offset": offset}), names, None
    # No LIMIT: PostHog's paginator asks for 100 rows + 1 (hasMore) at offset 0.
    return ir.Select(**{**body.__dict__, "limit": DEFAULT_LIMIT + 1, "offset": None}), names, DEFAULT_LIMIT


def _default_limits(node: ir.Select | ir.UnionSelect) -> ir.Select | ir.UnionSelect:
    if isinstance(node, ir.UnionSelect):
        return ir.UnionSelect(tuple(_default_limits(i) for i in node.items), distinct=node.distinct, kind=node.kind)
    if node.limit is None:
        return ir.Select(**{**node.__dict__, "limit": DEFAULT_LIMIT})
    return node


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
    rows = render_rows(rows, result.types, timezone)
    paginated = limit is not None
    return {
        "results": rows[:limit] if paginated else rows, "hasMore": len(rows) > limit if paginated else None,
        "columns": names, "types": [[n, t] for n, t in zip(names, result.types)], "hogql": text, "clickhouse": sql,
        "limit": limit, "offset": 0 if paginated else None,
        "timings": [{"k": "execute", "t": round(time.perf_counter() - started, 6)}],
    }


_TZ_IN_TYPE = re.compile(r"^DateTime(?:64)?\((?:\d+\s*,\s*)?'([^']+)'\)$")


def _unwrap(ch_type: str) -> str:
    for wrapper in ("Nullable(", "LowCardinality("):
        while ch_type.startswith(wrapper) and ch_type.endswith(")"):
            ch_type = ch_type[len(wrapper):-1]
    return ch_type


def _datetime_renderer(ch_type: str, timezone: str) -> Callable[[Any], Any] | None:
    """PostHog's results hold driver datetimes, serialized by orjson with OPT_UTC_Z:
    `2024-01-01T10:00:00Z`, `2024-01-01T11:00:00+01:00`, microseconds only when not zero."""
    base = _unwrap(ch_type)
    if base.startswith("Array(") and base.endswith(")"):
        inner = _datetime_renderer(base[len("Array("):-1], timezone)
        if inner is None:
            return None
        return lambda v: [inner(x) for x in v] if isinstance(v, list) else v
    if not (base == "DateTime" or base.startswith("DateTime(") or base.startswith("DateTime64")):
        return None
    m = _TZ_IN_TYPE.match(base)
    try:
        zone = ZoneInfo(m.group(1) if m else timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")

    def render(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            moment = datetime.fromisoformat(value).replace(tzinfo=zone)
        except ValueError:
            return value
        text = moment.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return render


def render_rows(rows: list[list[Any]], types: list[str], timezone: str) -> list[list[Any]]:
    renderers = [(i, r) for i, r in enumerate(_datetime_renderer(t, timezone) for t in types) if r is not None]
    if not renderers:
        return rows
    for row in rows:
        for i, render in renderers:
            if i < len(row) and row[i] is not None:
                row[i] = render(row[i])
    return rows

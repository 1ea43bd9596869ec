"""Validate a sqlglot HogQL tree and lower it to our IR.

Only the node kinds handled below are accepted; anything else is a 400 naming it. Names never pass
through: tables resolve against tables.py, fields against each table's fields, functions against
functions.py, and user aliases are replaced by generated ones (`t0`, `c0`) so no user text is an
identifier in the SQL. Literals become parameters. Every table carries the caller's team filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from sqlglot import exp

from app import clock
from app.hogql.exprs import Expressions
from app.hogql.parse import HogQLError
from app.hogql.tables import EVENT_RAW, STAR_FIELDS, TABLES, EventsHooks, events_select, source_select
from app.query_engine import ir
from app.query_engine.scope import EVENTS_ALIAS, Scope
from app.schemas.query.base import PersonsOnEventsMode

DEFAULT_POE_MODE = PersonsOnEventsMode.person_id_override_properties_on_events

MAX_ROWS = 50_000
DEFAULT_LIMIT = 100
_SUB_LIMIT = 1_000_000_000
_SELECT_ARGS = {"expressions", "from_", "joins", "where", "group", "having", "order", "limit", "offset",
                "distinct", "with_", "kind", "windows"}
_JOIN_KINDS = {("", ""): ir.JoinKind.INNER, ("", "INNER"): ir.JoinKind.INNER, ("LEFT", ""): ir.JoinKind.LEFT,
               ("LEFT", "OUTER"): ir.JoinKind.LEFT, ("RIGHT", ""): ir.JoinKind.RIGHT,
               ("RIGHT", "OUTER"): ir.JoinKind.RIGHT, ("FULL", ""): ir.JoinKind.FULL,
               ("FULL", "OUTER"): ir.JoinKind.FULL, ("", "CROSS"): ir.JoinKind.CROSS}
_SET_ARGS = {"this", "expression", "distinct", "with_", "order", "limit", "offset"}
_SET_KINDS = {exp.Union: ir.SetKind.UNION, exp.Intersect: ir.SetKind.INTERSECT, exp.Except: ir.SetKind.EXCEPT}


@dataclass
class Source:
    alias: str  # generated
    table: str  # a TABLES name or "subquery"
    outputs: dict[str, str] = field(default_factory=dict)  # subquery: user name → generated column
    hooks: EventsHooks | None = None
    person: set[str] = field(default_factory=set)  # events: "id"/"properties" read, resolved per PoE mode


@dataclass
class _Pending:
    """A FROM/JOIN item whose IR is decided once the whole SELECT is lowered: an events table becomes
    a persons-on-events subquery only if the SELECT reads its person (see Lowerer.realize)."""
    source: Source
    ir: ir.Expr | None = None


@dataclass
class Ctx:
    sources: dict[str, Source] = field(default_factory=dict)  # user alias (or table name) → source
    order: list[Source] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # user SELECT alias → generated column
    columns: list[str] = field(default_factory=list)  # generated names of the SELECT list, in order
    ctes: dict[str, exp.Expression] = field(default_factory=dict)
    windows: dict[str, exp.Window] = field(default_factory=dict)  # WINDOW name AS (…)
    lambdas: dict[str, str] = field(default_factory=dict)  # lambda argument in scope → generated name


def _pos(node: exp.Expression, shift: int) -> str:
    # The node itself may carry no position (only tokens do): look below it, then around it.
    around = [node]
    while around[-1].parent is not None and len(around) < 50:
        around.append(around[-1].parent)
    for n in (n for top in around for n in top.walk()):
        meta = getattr(n, "_meta", None) or {}
        if "line" in meta:
            # sqlglot's `col` is where the token ends; report where it starts.
            col = meta["col"] - (meta.get("end", 0) - meta.get("start", 0))
            col = col - shift if meta["line"] == 1 else col
            return f" at line {meta['line']}, column {max(1, col)}"
    return ""


class Lowerer(Expressions):
    def __init__(self, *, team_id: int, timezone: str, property_types: dict, attr: str, col_shift: int = 0,
                 values: dict[str, Any] | None = None, variables: dict[str, dict[str, Any]] | None = None,
                 variables_attr: str | None = None, poe_mode: PersonsOnEventsMode = DEFAULT_POE_MODE) -> None:
        self.values = values or {}
        self.variables = variables or {}  # code_name → the request's variable entry
        self.variables_attr = variables_attr or attr
        self.poe_mode = PersonsOnEventsMode(poe_mode)
        self.timezone = timezone
        self.lambda_n = 0
        self.col_shift = col_shift  # expressions are parsed as `SELECT <expr>`: report their own columns
        self.team_id = team_id
        self.tz = ir.Param(timezone, "String")
        self.property_types = property_types
        self.attr = attr
        self.n = 0

    def fail(self, message: str, node: exp.Expression | None = None, *, attr: str | None = None,
             suffix: str = "") -> HogQLError:
        where = _pos(node, self.col_shift) if node is not None else ""
        return HogQLError(f"{message}{where}.{suffix}", attr=attr or self.attr)

    def name(self, prefix: str) -> str:
        self.n += 1
        if self.n > 200:  # CTEs used many times over expand multiplicatively
            raise self.fail("The query references too many tables")
        return f"{prefix}{self.n}"

    # --- queries ---------------------------------------------------------------------------------

    def query(self, node: exp.Expression, ctes: dict[str, exp.Expression], top: bool = False
              ) -> tuple[ir.Select | ir.UnionSelect, list[str]]:
        """(IR, output names as the user sees them)."""
        if isinstance(node, exp.Subquery):
            return self.query(node.this, ctes, top)
        if isinstance(node, exp.SetOperation):
            kind = _SET_KINDS.get(type(node))
            if kind is None or node.args.get("by_name") or node.args.get("side") or node.args.get("kind") \
                    or node.args.get("on"):
                raise self.fail(f"{node.key.upper()} is not supported", node)
            extra = [k for k, v in node.args.items() if v not in (None, [], False) and k not in _SET_ARGS]
            if extra:  # SETTINGS, FORMAT, INTO OUTFILE… attach to the set operation itself
                raise self.fail(f"{extra[0].upper().rstrip('_')} is not allowed in HogQL", node)
            if any(node.args.get(k) for k in ("order", "limit", "offset")) and not top:
                raise self.fail(f"ORDER BY/LIMIT on a {node.key.upper()} must be inside parentheses", node)
            ctes = self.with_(node, ctes)
            left, names = self.query(node.this, ctes)
            right, right_names = self.query(node.expression, ctes)
            if len(right_names) != len(names):
                raise self.fail(f"Both sides of {node.key.upper()} must select the same number of columns "
                                f"({len(names)} and {len(right_names)})", node)
            return ir.UnionSelect((left, right), distinct=bool(node.args.get("distinct")), kind=kind), names
        if isinstance(node, exp.Select):
            return self.select(node, ctes)
        raise self.fail(f"Expected a SELECT, found {node.key.upper()}", node)

    def select(self, node: exp.Select, ctes: dict[str, exp.Expression]) -> tuple[ir.Select, list[str]]:
        extra = [k for k, v in node.args.items() if v not in (None, [], False) and k not in _SELECT_ARGS]
        if extra:
            raise self.fail(f"{extra[0].upper().rstrip('_')} is not allowed in HogQL", node)
        ctx = Ctx(ctes=self.with_(node, ctes))
        for w in node.args.get("windows") or []:
            name = w.this.name if isinstance(w.this, exp.Identifier) else None
            if not name or name in ctx.windows:
                raise self.fail("WINDOW needs distinct names: WINDOW w AS (…)", w)
            ctx.windows[name] = w
        distinct = node.args.get("distinct")
        if distinct is not None and distinct.args.get("on"):
            raise self.fail("DISTINCT ON is not supported", node)
        from_ = node.args.get("from_")
        first: _Pending | None = None
        where_extra = None
        joins: list[tuple[ir.JoinKind, _Pending, ir.Expr | None]] = []
        if from_ is not None:
            first = self.source(from_.this, ctx, joined=False)
            for j in node.args.get("joins") or []:
                joins.append(self.join(j, ctx))
        elif node.args.get("joins"):
            raise self.fail("JOIN needs a FROM", node)
        columns: list[ir.Expr] = []
        names: list[str] = []
        for item in node.expressions:
            user_alias = item.alias if isinstance(item, exp.Alias) else None
            body = item.this if isinstance(item, exp.Alias) else item
            if isinstance(body, exp.Star) or (isinstance(body, exp.Column) and isinstance(body.this, exp.Star)):
                for value, label in self.star(body, ctx):
                    gen = f"c{len(columns)}"
                    columns.append(ir.Alias(value, gen))
                    ctx.columns.append(gen)
                    names.append(label)
                    ctx.aliases.setdefault(label, gen)
                continue
            gen = f"c{len(columns)}"
            columns.append(ir.Alias(self.expr(body, ctx), gen))
            ctx.columns.append(gen)
            label = user_alias or _label(body)
            names.append(label)
            if user_alias:
                ctx.aliases[user_alias] = gen
            elif isinstance(body, exp.Column):
                ctx.aliases.setdefault(body.name, gen)
        where = self.expr(node.args["where"].this, ctx) if node.args.get("where") else None
        group = node.args.get("group")
        if group is not None and any(group.args.get(k) for k in group.args if k != "expressions"):
            raise self.fail("GROUP BY modifiers (ROLLUP, CUBE, TOTALS) are not supported", group)
        group_by = tuple(self.positional(e, ctx) for e in (group.expressions if group else []))
        having = self.expr(node.args["having"].this, ctx) if node.args.get("having") else None
        order = tuple(self.order(o, ctx) for o in (node.args["order"].expressions if node.args.get("order") else []))
        limit = self.count(node.args.get("limit"), "LIMIT")
        offset = self.count(node.args.get("offset"), "OFFSET")
        # Only now is it known which events sources read their person: realize the FROM/JOIN items.
        src_ir, alias = None, None
        if first is not None:
            # With a RIGHT/FULL join the left side is a team-filtered subquery too: a WHERE on it would
            # drop the NULL-padded rows instead of keeping other environments out.
            outer = any(kind in (ir.JoinKind.RIGHT, ir.JoinKind.FULL) for kind, _, _ in joins)
            src_ir, where_extra = self.realize(first, joined=outer)
            alias = first.source.alias
        ir_joins = tuple(ir.Join(kind, self.realize(p, joined=True)[0], p.source.alias, on) for kind, p, on in joins)
        sel = ir.Select(columns=tuple(columns), from_=src_ir, from_alias=alias, joins=ir_joins,
                        where=ir.and_(where_extra, where) if (where_extra or where) else None, group_by=group_by,
                        having=having, order_by=order, limit=limit, offset=offset, distinct=distinct is not None)
        return sel, names

    def star(self, node: exp.Expression, ctx: Ctx) -> list[tuple[ir.Expr, str]]:
        """`*` (every source) or `t.*`: the public fields of each table, or a subquery's columns."""
        table = node.args.get("table") if isinstance(node, exp.Column) else None
        if table is not None and table.name not in ctx.sources:
            raise self.fail(f"Unknown table `{table.name[:120]}`", node)
        sources = [ctx.sources[table.name]] if table is not None else ctx.order
        if not sources:
            raise self.fail("SELECT * needs a FROM", node)
        out = []
        for src in sources:
            names = list(src.outputs) if src.table == "subquery" else STAR_FIELDS[src.table]
            out.extend((self.source_field(src, [name], node), name) for name in names)
        return out

    def with_(self, node: exp.Expression, ctes: dict[str, exp.Expression]) -> dict[str, exp.Expression]:
        out = dict(ctes)
        if node.args.get("with_"):
            if node.args["with_"].args.get("recursive"):
                raise self.fail("WITH RECURSIVE is not supported", node)
            for cte in node.args["with_"].expressions:
                if not isinstance(cte, exp.CTE) or not isinstance(cte.this, (exp.Select, exp.Union, exp.Subquery)):
                    raise self.fail("Only `WITH name AS (SELECT …)` is supported", cte)
                out[cte.alias_or_name.lower()] = cte.this
        return out

    def count(self, node: exp.Expression | None, what: str) -> int | None:
        if node is None:
            return None
        if node.args.get("expressions") or isinstance(node, exp.Limit) and node.args.get("offset"):
            raise self.fail(f"Unsupported {what} form", node)
        value = node.expression
        if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
            raise self.fail(f"{what} needs a whole number", node)
        number = int(value.this)
        if number > _SUB_LIMIT:
            raise self.fail(f"{what} is too large", node)
        return number

    def positional(self, node: exp.Expression, ctx: Ctx) -> ir.Expr:
        # `GROUP BY 1` / `ORDER BY 2` name SELECT columns; a parameter there would be a constant.
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            k = int(node.this)
            if not 1 <= k <= len(ctx.columns):
                raise self.fail(f"Position {k} is not in the SELECT list", node)
            return ir.Column(ctx.columns[k - 1])
        return self.expr(node, ctx)

    def order(self, node: exp.Expression, ctx: Ctx) -> ir.OrderBy:
        if not isinstance(node, exp.Ordered) or node.args.get("with_fill"):
            raise self.fail("Unsupported ORDER BY item", node)
        return ir.OrderBy(self.positional(node.this, ctx), ir.Direction.DESC if node.args.get("desc")
                          else ir.Direction.ASC)

    def source(self, node: exp.Expression, ctx: Ctx, *, joined: bool) -> _Pending:
        """A FROM/JOIN item registered in ctx; `realize` turns it into IR after the SELECT is lowered."""
        if node.args.get("joins") or node.args.get("laterals") or node.args.get("pivots"):
            raise self.fail("Unsupported FROM clause", node)
        user_alias = node.alias if node.alias else None
        gen = self.name("t")
        if isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                raise self.fail("Table functions are not allowed", node)
            if node.args.get("db") or node.args.get("catalog"):
                raise self.fail(f"Unknown table `{node.sql(dialect='clickhouse')[:120]}`; only "
                                f"{', '.join(TABLES)} can be queried", node)
            if any(node.args.get(k) for k in ("sample", "final", "hints", "version", "when")):
                raise self.fail("Table modifiers (SAMPLE, FINAL) are not supported", node)
            name = node.name
            if name.lower() in ctx.ctes:
                # Each use of a CTE is lowered again (so it gets its own team filter); without
                # itself in scope, so a CTE cannot recurse.
                key = name.lower()
                inner, names = self.query(ctx.ctes[key], {k: v for k, v in ctx.ctes.items() if k != key})
                src = Source(gen, "subquery", {n: f"c{i}" for i, n in enumerate(names)})
                self._register(ctx, user_alias or name, src)
                return _Pending(src, ir.Subquery(inner))
            if name not in TABLES:
                raise self.fail(f"Unknown table `{name[:120]}`; only {', '.join(TABLES)} can be queried", node)
            src = Source(gen, name)
            if name == "events":
                src.hooks = EventsHooks(lambda c, s=src: self._event_col(s, c),
                                        lambda s=src: self._person(s, "properties"), lambda s=src: self._person(s, "id"))
            self._register(ctx, user_alias or name, src)
            return _Pending(src, None if name == "events" else ir.Subquery(source_select(name, self.team_id)))
        if isinstance(node, exp.Subquery):
            inner, names = self.query(node.this, ctx.ctes)
            src = Source(gen, "subquery", {n: f"c{i}" for i, n in enumerate(names)})
            self._register(ctx, user_alias or gen, src)
            return _Pending(src, ir.Subquery(inner))
        raise self.fail(f"Unsupported FROM item {node.key.upper()}", node)

    @staticmethod
    def _person(src: Source, what: str) -> ir.Expr:
        # The events source projects `person_id`/`person_properties` already resolved for the mode.
        src.person.add(what)
        return ir.Column("person_id" if what == "id" else "person_properties", src.alias)

    @staticmethod
    def _event_col(src: Source, column: str) -> ir.Expr:
        if column == "person_created_at":  # person.created_at: resolved like the properties
            src.person.add("created_at")
        return ir.Column(column, src.alias)

    def realize(self, pending: _Pending, *, joined: bool) -> tuple[ir.Expr, ir.Expr | None]:
        """(IR source, extra WHERE) of a FROM/JOIN item. An events table is read straight (team filter in
        the WHERE) when it is the plain FROM; as a team-filtered subquery when joined or when its person
        must be resolved through joins (persons-on-events mode, spec QUERY_ENGINE.md §11.3)."""
        if pending.ir is not None:
            return pending.ir, None
        src = pending.source
        poe = self.persons_select(src.person)
        if poe is not None:
            return ir.Subquery(poe), None
        if joined:
            return ir.Subquery(events_select(self.team_id)), None
        return ir.Table("events"), ir.eq(ir.Column("team_id", src.alias), ir.Param(self.team_id, "Int64"))

    def persons_select(self, needs: set[str]) -> ir.Select | None:
        """The caller's events with `person_id`/`person_properties` resolved as the trends engine does
        (app/query_engine/scope.py), or None when the raw columns already are the answer."""
        mode = self.poe_mode
        if mode == PersonsOnEventsMode.person_id_no_override_properties_on_events:
            return None
        if mode == PersonsOnEventsMode.person_id_override_properties_on_events:
            needs = needs & {"id"}  # properties and created_at come from the event's snapshot
        if not needs:
            return None
        scope = Scope(self.team_id, self.timezone, clock.now(), poe_mode=mode)
        resolved = {"person_id": scope.person_id() if "id" in needs else None,
                    "person_properties": scope.person_properties() if "properties" in needs else None}
        person_id = scope.person_id() if "created_at" in needs else None  # asks for its joins first
        joins = scope.build_joins()
        if person_id is not None:  # person.created_at: the latest person row's, like the properties here
            latest = source_select("persons", self.team_id)
            latest = ir.Select(**{**latest.__dict__, "columns": (ir.Column("id"), ir.Alias(
                ir.call("argMax", ir.Column("created_at"), ir.Column("version")), "created_at"))})
            joins += (ir.Join(ir.JoinKind.LEFT, latest, "person_created",
                              ir.eq(ir.Column("id", "person_created"), person_id)),)
            resolved["person_created_at"] = ir.Column("created_at", "person_created")
        columns = tuple(ir.Alias(resolved.get(c) or scope.col(c), c) for c in EVENT_RAW)
        return ir.Select(columns=columns, from_=ir.Table("events"), from_alias=EVENTS_ALIAS, joins=joins,
                         where=ir.eq(scope.col("team_id"), scope.team()))

    def _register(self, ctx: Ctx, name: str, src: Source) -> None:
        if name in ctx.sources:
            raise self.fail(f"Table alias {name!r} is used twice")
        ctx.sources[name] = src
        ctx.order.append(src)

    def join(self, node: exp.Join, ctx: Ctx) -> tuple[ir.JoinKind, _Pending, ir.Expr | None]:
        side, kind = (node.side or "").upper(), (node.kind or "").upper()
        if (side, kind) not in _JOIN_KINDS or node.args.get("global_") or node.args.get("strictness") \
                or node.args.get("method"):
            what = " ".join(str(p).upper() for p in (node.args.get("method"), side, kind) if p) or "This"
            raise self.fail(f"{what} JOIN is not supported; use "
                            "[INNER], LEFT, RIGHT, FULL [OUTER] or CROSS JOIN", node)
        join_kind = _JOIN_KINDS[(side, kind)]
        using, on = node.args.get("using"), node.args.get("on")
        if join_kind == ir.JoinKind.CROSS:
            if using or on is not None:
                raise self.fail("CROSS JOIN takes no ON or USING", node)
        elif bool(using) == (on is not None):
            raise self.fail("JOIN needs an ON condition or USING (…)", node)
        left = list(ctx.order)
        pending = self.source(node.this, ctx, joined=True)
        if join_kind == ir.JoinKind.CROSS:
            return join_kind, pending, None
        if on is not None:
            return join_kind, pending, self.expr(on, ctx)
        # USING (a, b) is `ON l.a = r.a AND l.b = r.b`, l being the first earlier table that has the field;
        # an unqualified `a` afterwards reads that left table's column.
        conditions: list[ir.Expr] = []
        for ident in using:
            name = ident.name if isinstance(ident, (exp.Identifier, exp.Column)) else None
            owner = next((s for s in left if name is not None and self.has_field(s, name)), None)
            if owner is None or not self.has_field(pending.source, name):
                raise self.fail(f"USING ({str(name)[:60]}) needs a field of that name on both sides", node)
            conditions.append(ir.eq(self.source_field(owner, [name], node),
                                    self.source_field(pending.source, [name], node)))
        return join_kind, pending, ir.and_(*conditions)


def _label(node: exp.Expression) -> str:
    """The column name shown for an unaliased SELECT item: the HogQL text of the expression."""
    if isinstance(node, (exp.Column, exp.Dot)):
        return node.sql(dialect="clickhouse").replace('"', "")
    return node.sql(dialect="clickhouse").replace('"$', "$").replace('"', "")[:200]

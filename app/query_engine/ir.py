"""The query IR: small frozen dataclasses that `lower` builds and `printer` renders.

Nothing here holds SQL text. Values are `Param`s (server-side parameters); `Const` is only for
numbers the engine itself chose or Pydantic validated as bounded (LIMIT, quantile levels, window
lengths). Names (`Column`, `Table`, aliases) come from the catalog or from engine constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union


class Op(Enum):
    EQ = "="
    NE = "!="
    LT = "<"
    LTE = "<="
    GT = ">"
    GTE = ">="
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    IN = "IN"  # right side: a tuple call or a Subquery (HogQL)
    NOT_IN = "NOT IN"


class Direction(Enum):
    ASC = "ASC"
    DESC = "DESC"


class JoinKind(Enum):
    LEFT = "LEFT JOIN"
    INNER = "INNER JOIN"
    RIGHT = "RIGHT JOIN"  # HogQL: both sides are team-filtered subqueries before the join
    FULL = "FULL OUTER JOIN"
    CROSS = "CROSS JOIN"  # no ON


class SetKind(Enum):
    """How the items of a `UnionSelect` combine (HogQL set operations)."""
    UNION = "UNION"
    INTERSECT = "INTERSECT"
    EXCEPT = "EXCEPT"


class FrameKind(Enum):
    ROWS = "ROWS"
    RANGE = "RANGE"


class BoundKind(Enum):
    UNBOUNDED_PRECEDING = "UNBOUNDED PRECEDING"
    PRECEDING = "PRECEDING"  # needs an offset
    CURRENT_ROW = "CURRENT ROW"
    FOLLOWING = "FOLLOWING"  # needs an offset
    UNBOUNDED_FOLLOWING = "UNBOUNDED FOLLOWING"


@dataclass(frozen=True)
class Param:
    value: Any
    ch_type: str  # a ClickHouse type chosen by the engine, e.g. "String", "Array(String)"


@dataclass(frozen=True)
class Const:
    value: int | float

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise TypeError("Const holds engine-chosen numbers only")


@dataclass(frozen=True)
class Null:
    """The NULL literal (typed by ClickHouse from its context, unlike a NULL parameter)."""


@dataclass(frozen=True)
class Column:
    name: str
    table: str | None = None  # a table alias


@dataclass(frozen=True)
class Call:
    fn: str  # a name of printer.FUNCTIONS
    args: tuple["Expr", ...] = ()
    params: tuple[Const, ...] = ()  # parametric aggregate arguments: quantile(0.9)(x)
    distinct: bool = False


@dataclass(frozen=True)
class Lambda:
    args: tuple[str, ...]
    body: "Expr"


@dataclass(frozen=True)
class BinOp:
    op: Op
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class And:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Not:
    expr: "Expr"


@dataclass(frozen=True)
class IsNull:
    expr: "Expr"
    negated: bool = False


@dataclass(frozen=True)
class ArrayExpr:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Alias:
    expr: "Expr"
    name: str


@dataclass(frozen=True)
class OrderBy:
    expr: "Expr"
    direction: Direction = Direction.ASC


@dataclass(frozen=True)
class FrameBound:
    kind: BoundKind
    offset: int | None = None  # a bounded non-negative int validated by lowering


@dataclass(frozen=True)
class WindowFrame:
    kind: FrameKind
    start: FrameBound
    end: FrameBound | None = None  # None: `ROWS <start>` (the end is the current row)


@dataclass(frozen=True)
class Window:
    call: Call
    partition_by: tuple["Expr", ...] = ()
    order_by: tuple[OrderBy, ...] = ()
    frame: WindowFrame | None = None


@dataclass(frozen=True)
class Table:
    name: str  # a catalog table


@dataclass(frozen=True)
class Sample:
    numerator: int
    denominator: int


@dataclass(frozen=True)
class Join:
    kind: JoinKind
    source: Union[Table, "Select"]
    alias: str
    on: "Expr | None"  # None only for JoinKind.CROSS


@dataclass(frozen=True)
class Select:
    columns: tuple["Expr", ...]
    from_: Union[Table, "Select"] | None = None
    from_alias: str | None = None
    sample: Sample | None = None
    joins: tuple[Join, ...] = ()
    where: "Expr | None" = None
    group_by: tuple["Expr", ...] = ()
    having: "Expr | None" = None
    order_by: tuple[OrderBy, ...] = ()
    limit: int | None = None
    distinct: bool = False
    settings: tuple[tuple[str, int], ...] = field(default=())
    offset: int | None = None  # a bounded int validated by lowering (HogQL LIMIT … OFFSET …)


@dataclass(frozen=True)
class UnionSelect:
    """SELECTs combined with UNION ALL (or UNION DISTINCT when `distinct`); with another `kind`,
    INTERSECT/EXCEPT (ClickHouse's plain form, or DISTINCT when `distinct`)."""
    items: tuple["Select | UnionSelect", ...]
    distinct: bool = False
    kind: SetKind = SetKind.UNION


@dataclass(frozen=True)
class Subquery:
    """A parenthesized SELECT/UNION used as a value (`x IN (SELECT …)`) or a FROM/JOIN source."""
    query: "Select | UnionSelect"


Expr = Union[Param, Const, Null, Column, Call, Lambda, BinOp, And, Or, Not, IsNull, ArrayExpr, Alias, Window, Select,
             Subquery]

TRUE = Const(1)


def and_(*items: Expr | None) -> Expr:
    """AND of the non-empty items (TRUE when none), flattening nested ANDs."""
    flat: list[Expr] = []
    for item in items:
        if item is None or item == TRUE:
            continue
        flat.extend(item.items if isinstance(item, And) else (item,))
    if not flat:
        return TRUE
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def or_(*items: Expr) -> Expr:
    if not items:
        return Const(0)
    if any(item == TRUE for item in items):
        return TRUE
    return items[0] if len(items) == 1 else Or(tuple(items))


def call(fn: str, *args: Expr, params: tuple[Const, ...] = (), distinct: bool = False) -> Call:
    return Call(fn, tuple(args), params, distinct)


def eq(left: Expr, right: Expr) -> BinOp:
    return BinOp(Op.EQ, left, right)


def string(value: str) -> Param:
    return Param(value, "String")

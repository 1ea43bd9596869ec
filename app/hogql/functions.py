"""The HogQL function allowlist: HogQL name → (our IR/printer name, arity, aggregate?).

Names are matched case-insensitively, as ClickHouse does for its SQL-standard functions. Anything
not listed here is refused with a 400 naming the function, so table functions (`url`, `file`,
`remote`, `numbers`…) and introspection (`currentUser`, `version`…) can never be reached.
"""

from __future__ import annotations

from dataclasses import dataclass

INF = 100  # "any number of arguments": still bounded, so one call cannot multiply a value endlessly


@dataclass(frozen=True)
class Fn:
    ch: str
    min_args: int
    max_args: int
    aggregate: bool = False


def _fns(spec: dict[str, tuple[int, int]], aggregate: bool = False) -> dict[str, Fn]:
    return {name: Fn(name, lo, hi, aggregate) for name, (lo, hi) in spec.items()}


AGGREGATES = _fns({
    "count": (0, 1), "countIf": (1, 2), "uniq": (1, INF), "uniqExact": (1, INF), "uniqIf": (2, 2),
    "sum": (1, 1), "sumIf": (2, 2), "avg": (1, 1), "avgIf": (2, 2), "min": (1, 1), "minIf": (2, 2),
    "max": (1, 1), "maxIf": (2, 2), "median": (1, 1), "argMax": (2, 2), "argMin": (2, 2), "any": (1, 1),
    "anyLast": (1, 1), "groupArray": (1, 1), "groupUniqArray": (1, 1), "stddevPop": (1, 1),
    "stddevSamp": (1, 1), "varPop": (1, 1), "varSamp": (1, 1),
}, aggregate=True)
# Parametric aggregates: quantile(0.9)(x). The level is checked to be a number in [0, 1].
PARAMETRIC = _fns({"quantile": (1, 1), "quantiles": (1, 1)}, aggregate=True)

SCALARS = _fns({
    # conditional / null
    "if": (3, 3), "multiIf": (3, INF), "ifNull": (2, 2), "nullIf": (2, 2), "coalesce": (1, INF),
    "isNull": (1, 1), "isNotNull": (1, 1), "assumeNotNull": (1, 1), "greatest": (2, INF), "least": (2, INF),
    # math
    "abs": (1, 1), "round": (1, 2), "floor": (1, 2), "ceil": (1, 2), "sqrt": (1, 1), "pow": (2, 2),
    "exp": (1, 1), "log": (1, 1), "log2": (1, 1), "log10": (1, 1), "intDiv": (2, 2), "modulo": (2, 2),
    "plus": (2, 2), "minus": (2, 2), "multiply": (2, 2), "divide": (2, 2),
    # strings
    "length": (1, 1), "empty": (1, 1), "notEmpty": (1, 1), "lower": (1, 1), "upper": (1, 1),
    "concat": (2, INF), "substring": (2, 3), "trim": (1, 1), "trimLeft": (1, 1), "trimRight": (1, 1),
    "replaceAll": (3, 3), "replaceOne": (3, 3), "replaceRegexpAll": (3, 3), "replaceRegexpOne": (3, 3),
    "position": (2, 2), "positionCaseInsensitive": (2, 2), "startsWith": (2, 2), "endsWith": (2, 2),
    "splitByChar": (2, 2), "splitByString": (2, 2), "match": (2, 2), "extract": (2, 2), "like": (2, 2),
    "ilike": (2, 2), "notLike": (2, 2), "notILike": (2, 2), "reverse": (1, 1), "leftPad": (2, 3),
    "rightPad": (2, 3), "left": (2, 2), "right": (2, 2), "base64Encode": (1, 1), "base64Decode": (1, 1),
    "domain": (1, 1), "path": (1, 1), "cutQueryString": (1, 1), "lengthUTF8": (1, 1),
    # JSON (over the raw `properties` text)
    "JSONExtractString": (2, INF), "JSONExtractInt": (2, INF), "JSONExtractFloat": (2, INF),
    "JSONExtractBool": (2, INF), "JSONExtractRaw": (2, INF), "JSONHas": (2, INF), "JSONLength": (1, INF),
    "JSONExtractKeys": (1, INF),
    # arrays
    "has": (2, 2), "hasAny": (2, 2), "hasAll": (2, 2), "indexOf": (2, 2), "arrayJoin": (1, 1),
    "arrayElement": (2, 2), "arraySlice": (2, 3), "arrayDistinct": (1, 1), "arraySort": (1, 1),
    "arrayReverse": (1, 1), "arrayConcat": (1, 10), "arrayStringConcat": (1, 2), "arrayFlatten": (1, 1),
    "arrayCompact": (1, 1), "arrayUniq": (1, INF), "range": (1, 3), "tuple": (1, INF), "array": (0, INF),
    # dates (HogQL timestamps are already in the project timezone, see lower.py)
    "toDate": (1, 1), "toStartOfDay": (1, 1), "toStartOfHour": (1, 1), "toStartOfMinute": (1, 1),
    "toStartOfWeek": (1, 2), "toStartOfMonth": (1, 1), "toStartOfQuarter": (1, 1), "toStartOfYear": (1, 1),
    "toMonday": (1, 1), "toYear": (1, 1), "toQuarter": (1, 1), "toMonth": (1, 1), "toDayOfMonth": (1, 1),
    "toDayOfWeek": (1, 2), "toDayOfYear": (1, 1), "toHour": (1, 1), "toMinute": (1, 1), "toSecond": (1, 1),
    "toISOWeek": (1, 1), "toYYYYMM": (1, 1), "toYYYYMMDD": (1, 1), "toUnixTimestamp": (1, 1),
    "dateDiff": (3, 3), "dateAdd": (3, 3), "dateSub": (3, 3), "formatDateTime": (2, 2), "toTimeZone": (2, 2),
    "addDays": (2, 2), "addHours": (2, 2), "addMinutes": (2, 2), "addSeconds": (2, 2), "addWeeks": (2, 2),
    "addMonths": (2, 2), "addYears": (2, 2), "subtractDays": (2, 2), "subtractHours": (2, 2),
    "subtractMinutes": (2, 2), "subtractWeeks": (2, 2), "subtractMonths": (2, 2), "subtractYears": (2, 2),
    "toIntervalSecond": (1, 1), "toIntervalMinute": (1, 1), "toIntervalHour": (1, 1), "toIntervalDay": (1, 1),
    "toIntervalWeek": (1, 1), "toIntervalMonth": (1, 1), "toIntervalYear": (1, 1),
    # other
    "toUUID": (1, 1), "toTypeName": (1, 1), "cityHash64": (1, INF), "sipHash64": (1, INF),
})

# Window-only functions (valid with OVER (…) only; lowering refuses them elsewhere).
WINDOW = _fns({"row_number": (0, 0), "rank": (0, 0), "dense_rank": (0, 0), "lagInFrame": (1, 3),
               "leadInFrame": (1, 3), "first_value": (1, 1), "last_value": (1, 1), "nth_value": (2, 2),
               "ntile": (1, 1), "percent_rank": (0, 0), "cume_dist": (0, 0)})
# SQL-standard names HogQL maps to ClickHouse's frame-bound functions. Without an explicit frame they get
# `ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING`, so lead() sees the rows after the current one.
WINDOW_ALIASES = {"lag": "lagInFrame", "lead": "leadInFrame"}
# first_value/last_value are also ClickHouse aggregates, so they may appear without OVER.
WINDOW_ONLY = frozenset(set(WINDOW) - {"first_value", "last_value"}) | frozenset(WINDOW_ALIASES)


@dataclass(frozen=True)
class HigherOrder:
    """An array function that takes a lambda first: `arrayMap(x -> x * 2, arr)`. The lambda has one
    argument per array; `lambda_required` False means the plain `f(arr)` form exists too."""
    max_arrays: int
    lambda_required: bool


HIGHER_ORDER = {
    **{name: HigherOrder(10, True) for name in (
        "arrayMap", "arrayFilter", "arrayFirst", "arrayLast", "arrayFirstIndex", "arrayLastIndex", "arrayFill",
        "arrayReverseFill", "arraySplit")},
    **{name: HigherOrder(10, False) for name in (
        "arrayExists", "arrayAll", "arrayCount", "arraySum", "arrayMin", "arrayMax", "arrayAvg", "arrayCumSum",
        "arraySort", "arrayReverseSort")},
}

# Functions that HogQL defines itself (lower.py builds them): name → arity.
SPECIAL = {"toInt": (1, 1), "toFloat": (1, 1), "toString": (1, 1), "toDateTime": (1, 1), "now": (0, 0),
           "today": (0, 0), "toBool": (1, 1)}

_ALL: dict[str, Fn] = {**AGGREGATES, **PARAMETRIC, **SCALARS, **WINDOW}
_BY_LOWER = {name.lower(): name for name in [*_ALL, *SPECIAL, *HIGHER_ORDER, *WINDOW_ALIASES]}

# Names our printer must accept: HogQL lowering may emit any of these.
PRINTER_NAMES = tuple(sorted({fn.ch for fn in _ALL.values()} | set(HIGHER_ORDER) | {
    "accurateCastOrNull", "toDateTime64", "now64", "toString", "parseDateTime64BestEffortOrNull", "toTimeZone",
}))


def canonical(name: str) -> str | None:
    """The allowlisted spelling of `name`, or None when it is not allowed."""
    return _BY_LOWER.get(name.lower())


def lookup(name: str) -> Fn | None:
    return _ALL.get(name)


def is_aggregate(name: str) -> bool:
    fn = _ALL.get(name)
    return bool(fn and fn.aggregate)

"""`GET /elements/stats/` (spec/API.md §2.8): autocapture counts grouped by (chain, event).

The aggregation, ordering and paging run in ClickHouse; Python validates the parameters (in
PostHog's order, with its exact messages) and parses only the returned page of chains."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, time
from fractions import Fraction
from typing import Any, Callable

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import QueryParams

from app import clock
from app.services.definitions import property_types
from app.elements_chain import attribute_filter, parse_chain
from app.errors import QueryError, ValidationFailed
from app.models import Environment
from app.query_engine import ir
from app.query_engine.dates import END_OF_DAY, parse_date
from app.query_engine.executor.base import ClickHouseExecutor
from app.query_engine.printer import Printer
from app.query_engine.properties import filter_expr, filters_expr
from app.query_engine.scope import EVENTS_ALIAS, Scope
from app.schemas.query.properties import PropertyFilterList, PropertyGroupFilterValue, PropertyItem
from app.services.elements import run_clickhouse
from app.settings import Settings

EVENT_TYPES = ("$autocapture", "$rageclick", "$dead_click")
DEFAULT_LIMIT = 50_000
MAX_LIMIT = 999_999
DEFAULT_DATE_FROM = "-7d"

_FILTER_LIST = TypeAdapter(list[PropertyItem])
_FILTER_GROUP = TypeAdapter(PropertyGroupFilterValue)


@dataclass(frozen=True)
class StatsParams:
    include: tuple[str, ...]
    limit: int
    offset: int
    sampling_factor: float
    date_from: datetime | None  # None: `all`
    date_to: datetime
    properties: Any  # validated filters (list or group) or None
    filter_test_accounts: bool
    keep_attribute: Callable[[str], bool] | None
    attributes_key: str  # the normalised data_attributes, for the elements cache
    max_depth: int | None


def _invalid(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, code="invalid_input", attr=None)


def _properties(raw: str | None) -> Any:
    if raw is None or raw.strip() == "":
        return None
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise _invalid("Properties are unparsable!") from None
    try:
        if isinstance(doc, list):
            return _FILTER_LIST.validate_python(doc)
        if isinstance(doc, dict) and doc.get("type") in ("AND", "OR"):
            # A group may hold filters and groups at any depth, like PostHog's property groups.
            return _FILTER_GROUP.validate_python(doc)
    except RecursionError:
        raise _invalid("properties are nested too deeply") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        where = where if len(where) <= 120 else where[:120] + "…"
        raise _invalid(f"Invalid property filter at properties.{where}: {err.get('msg')}".replace("..", ".")) from None
    raise _invalid("properties must be a JSON list of property filters or a property group")


def _include(values: list[str]) -> tuple[str, ...]:
    wanted: set[str] = set()
    for raw in values:
        if raw.startswith("["):
            try:
                parsed = json.loads(raw)
            except (json.JSONDecodeError, RecursionError):
                raise _invalid("include must be a valid JSON array when passed as one") from None
            if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
                raise _invalid("include must be a JSON array of event names")
            wanted.update(parsed)
        else:
            wanted.update(part.strip() for part in raw.split(",") if part.strip())
    if not wanted:
        return EVENT_TYPES
    if not wanted <= set(EVENT_TYPES):
        raise _invalid("Only $autocapture, $rageclick, and $dead_click are supported.")
    return tuple(t for t in EVENT_TYPES if t in wanted)


def _int(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise _invalid(f"{name} must be an integer") from None


def _day_bounds(raw_from: str | None, raw_to: str | None, tz_name: str, now: datetime) -> tuple[datetime | None, datetime]:
    """Start of date_from's day and end of date_to's day, in the environment's zone (§2.8)."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(tz_name)
    try:
        start = None
        text_from = DEFAULT_DATE_FROM if raw_from is None or raw_from.strip() == "" else raw_from
        if text_from.strip() != "all":
            local = parse_date(text_from, tz, now, path="date_from").value.astimezone(tz)
            start = datetime.combine(local.date(), time(), tzinfo=tz)
        if raw_to is None or raw_to.strip() == "":
            end_local = now.astimezone(tz)
        else:
            end_local = parse_date(raw_to, tz, now, path="date_to").value.astimezone(tz)
        end = datetime.combine(end_local.date(), END_OF_DAY, tzinfo=tz)
    except QueryError as exc:
        raise _invalid(exc.detail) from None
    return start, end


def parse_params(query: QueryParams, environment: Environment) -> StatsParams:
    properties = _properties(query.get("properties"))
    date_from, date_to = _day_bounds(query.get("date_from"), query.get("date_to"),
                                     environment.timezone or "UTC", clock.now())
    limit = _int(query.get("limit"), DEFAULT_LIMIT, "limit")
    if not 1 <= limit <= MAX_LIMIT:
        raise _invalid(f"limit must be between 1 and {MAX_LIMIT}")
    offset = _int(query.get("offset"), 0, "offset")
    if offset < 0:
        raise _invalid("offset must be zero or greater")
    try:
        sampling_factor = float(query.get("sampling_factor", 1))
    except ValueError:
        raise _invalid("sampling_factor must be a float") from None
    if not 0 < sampling_factor <= 1:  # also refuses nan
        raise _invalid("sampling_factor must be greater than 0 and at most 1")
    include = _include(query.getlist("include"))
    keep_attribute = attribute_filter(query.get("data_attributes"))
    attributes_key = ",".join(n.strip() for n in (query.get("data_attributes") or "").split(",") if n.strip())
    max_depth = None
    if query.get("max_element_chain_depth") is not None:
        max_depth = _int(query.get("max_element_chain_depth"), 0, "max_element_chain_depth")
        if max_depth < 1:
            raise _invalid("max_element_chain_depth must be greater than zero")
    return StatsParams(
        include=include, limit=limit, offset=offset, sampling_factor=sampling_factor, date_from=date_from,
        date_to=date_to, properties=properties, filter_test_accounts=query.get("filter_test_accounts") == "true",
        keep_attribute=keep_attribute, attributes_key=attributes_key if keep_attribute else "", max_depth=max_depth,
    )


def _test_account_filters(environment: Environment) -> list[Any]:
    try:
        return PropertyFilterList(filters=environment.test_account_filters or []).filters
    except ValidationError:
        raise _invalid("The environment's test account filters are invalid.") from None


def build_stats_sql(params: StatsParams, scope: Scope, test_account_filters: list[Any]) -> tuple[str, dict[str, Any]]:
    """The one GROUP BY query of a stats page, as `(sql, params)`.

    The clauses are a fixed template; every value goes through the query-engine printer as a
    server-side parameter, property filters are lowered by app/query_engine/properties.py, and
    LIMIT/OFFSET are the validated ints."""
    conditions: list[ir.Expr] = [
        ir.eq(scope.col("team_id"), scope.team()),
        ir.call("in", scope.col("event"), ir.Param(list(params.include), "Array(String)")),
        ir.BinOp(ir.Op.NE, scope.col("elements_chain"), ir.string("")),
        ir.BinOp(ir.Op.LTE, scope.col("timestamp"), ir.Param(params.date_to, "DateTime64(6, 'UTC')")),
    ]
    if params.date_from is not None:
        conditions.append(ir.BinOp(ir.Op.GTE, scope.col("timestamp"), ir.Param(params.date_from, "DateTime64(6, 'UTC')")))
    try:
        if params.filter_test_accounts and test_account_filters:
            conditions.append(filters_expr(scope, test_account_filters, "test_account_filters"))
        if isinstance(params.properties, PropertyGroupFilterValue):
            conditions.append(filter_expr(scope, params.properties, "properties"))
        else:
            conditions.append(filters_expr(scope, params.properties, "properties"))
    except QueryError as exc:
        raise _invalid(exc.detail) from None
    except RecursionError:
        raise _invalid("properties are nested too deeply") from None
    sample = None
    if params.sampling_factor < 1:
        # At least one millionth: a tiny factor must not round to SAMPLE 0.
        frac = max(Fraction(params.sampling_factor).limit_denominator(1_000_000), Fraction(1, 1_000_000))
        sample = ir.Sample(frac.numerator, frac.denominator)
    chain, event = scope.col("elements_chain"), scope.col("event")
    select = ir.Select(
        columns=(ir.Alias(chain, "chain"), ir.Alias(event, "event_type"), ir.Alias(ir.call("count"), "occurrences"),
                 ir.Alias(ir.call("cityHash64", chain), "chain_hash")),
        from_=ir.Table("events"), from_alias=EVENTS_ALIAS, sample=sample, joins=tuple(scope.build_joins()),
        where=ir.and_(*conditions), group_by=(chain, event),
        # The hash tie-break keeps pages stable.
        order_by=(ir.OrderBy(ir.Column("occurrences"), ir.Direction.DESC), ir.OrderBy(ir.Column("chain_hash")),
                  ir.OrderBy(ir.Column("event_type"))),
        # limit + 1 rows tell whether a next page exists; an offset past any possible row count is
        # just an empty page (ClickHouse refuses offsets above UInt64).
        limit=int(params.limit) + 1, offset=min(int(params.offset), 2**62),
    )
    try:
        return Printer().print(select)
    except RecursionError:
        raise _invalid("properties are nested too deeply") from None


class _ElementsCache:
    """Serialised `elements` of recently returned chains, bounded by total size.

    Stats pages repeat: the toolbar and heatmaps ask for the same top chains again and again (the
    response is cacheable for only 30 s), and parsing a 50,000-row page costs far more than the
    GROUP BY that produced it. The key includes the shaping parameters."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[tuple[str, str, int | None], bytes] = OrderedDict()
        self.lock = threading.Lock()  # pages render in worker threads, possibly two at once

    def get(self, key: tuple[str, str, int | None]) -> bytes | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, int | None], value: bytes) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = value
            self.size += len(value) + len(key[0])
            while self.size > self.max_bytes and self.items:
                (chain, _, _), old = self.items.popitem(last=False)
                self.size -= len(old) + len(chain)


_CACHE = _ElementsCache(max_bytes=64 * 1024 * 1024)


def _elements_json(chain: str, params: StatsParams) -> bytes:
    key = (chain, params.attributes_key, params.max_depth)
    cached = _CACHE.get(key)
    if cached is None:
        cached = orjson.dumps(parse_chain(chain, keep_attribute=params.keep_attribute, max_depth=params.max_depth))
        _CACHE.put(key, cached)
    return cached


def _render_results(rows: list[tuple], params: StatsParams) -> bytes:
    """The `results` array as JSON bytes: each row's fields around its (cached) elements."""
    parts = []
    for chain, event_type, occurrences, chain_hash in rows:
        count = int(occurrences / params.sampling_factor)
        parts.append(b'{"count":%d,"hash":"%x","type":%s,"elements":%s}'
                     % (count, int(chain_hash), orjson.dumps(event_type), _elements_json(chain, params)))
    return b"[" + b",".join(parts) + b"]"


def render_page(results: bytes, next_url: str | None, previous_url: str | None) -> bytes:
    return b'{"results":%s,"next":%s,"previous":%s}' % (results, orjson.dumps(next_url), orjson.dumps(previous_url))


async def element_stats(
    session: AsyncSession, clickhouse: ClickHouseExecutor, *, environment: Environment, params: StatsParams,
    settings: Settings,
) -> tuple[bytes, bool]:
    """(the page's `results` as JSON bytes, whether more rows exist)."""
    scope = Scope(team_id=environment.id, timezone=environment.timezone or "UTC", now=clock.now(),
                  week_start_day=environment.week_start_day or 0,
                  property_types=await property_types(session, environment.id))
    tests = _test_account_filters(environment) if params.filter_test_accounts else []
    sql, sql_params = build_stats_sql(params, scope, tests)
    result = await run_clickhouse(clickhouse, sql, sql_params, settings=settings, max_rows=params.limit + 1)
    rows = result.rows[: params.limit]
    # A large page takes a while to parse: off the event loop, so other requests keep flowing.
    if len(rows) > 500:
        results = await asyncio.to_thread(_render_results, rows, params)
    else:
        results = _render_results(rows, params)
    return results, len(result.rows) > params.limit

"""Elements API use-cases: CRUD over stored elements (spec/API.md §2.3–2.7) and `values` (§2.9).

Stats (§2.8) live in element_stats.py."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import (
    NotFound, QueryError, QueryTimeout, ServiceUnavailable, ValidationFailed, validation_error_from_pydantic,
)
from app.models.element import Element
from app.query_engine.executor.base import (
    ClickHouseError, ClickHouseExecutor, ClickHouseTimeout, ClickHouseUnavailable, ExecuteSettings,
)
from app.schemas.elements import ElementWrite
from app.settings import Settings

FIELDS = ("text", "tag_name", "attr_class", "href", "attr_id", "nth_child", "nth_of_type", "attributes", "order")


def validate_element(data: Any, *, partial: bool) -> dict[str, Any]:
    """Body → the fields to write (only the ones sent when `partial`), or the first error of §1.6."""
    if not isinstance(data, dict):
        raise ValidationFailed(f"Invalid data. Expected a dictionary, but got {type(data).__name__}.",
                               attr=None)
    try:
        model = ElementWrite.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = validation_error_from_pydantic(list(errors))
        if errors and errors[0]["type"] in ("max_value", "min_value", "null_characters_not_allowed"):
            err.code = errors[0]["type"]  # DRF's codes for these validators
        raise err from None
    values = model.model_dump()
    if partial:
        return {k: values[k] for k in FIELDS if k in model.model_fields_set}
    return {k: values[k] for k in FIELDS}


def _owned(environment_id: int) -> Select:
    return select(Element).where(Element.environment_id == environment_id)


async def list_elements(session: AsyncSession, *, environment_id: int, limit: int, offset: int) -> tuple[int, list[Element]]:
    count = await session.scalar(select(func.count()).select_from(_owned(environment_id).subquery()))
    rows = await session.scalars(_owned(environment_id).order_by(Element.id).limit(limit).offset(offset))
    return int(count or 0), list(rows)


async def create_element(session: AsyncSession, *, environment_id: int, data: Any) -> Element:
    fields = validate_element(data, partial=False)
    element = Element(environment_id=environment_id, **fields)
    session.add(element)
    await session.flush()
    return element


def _parse_id(raw: str) -> int:
    # Non-integer or out-of-range ids are simply not found (never a 422 or a driver error).
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise NotFound() from None
    if not 0 < value <= 2**31 - 1:
        raise NotFound()
    return value


async def get_element(session: AsyncSession, *, environment_id: int, element_id: str) -> Element:
    element = await session.scalar(_owned(environment_id).where(Element.id == _parse_id(element_id)))
    if element is None:
        raise NotFound()
    return element


async def update_element(session: AsyncSession, *, environment_id: int, element_id: str, data: Any) -> Element:
    element = await get_element(session, environment_id=environment_id, element_id=element_id)
    for name, value in validate_element(data, partial=True).items():
        setattr(element, name, value)
    await session.flush()
    return element


async def delete_element(session: AsyncSession, *, environment_id: int, element_id: str) -> None:
    element = await get_element(session, environment_id=environment_id, element_id=element_id)
    await session.delete(element)
    await session.flush()


# --- values (§2.9) ---------------------------------------------------------------------------------

VALUES_KEYS = ("attr_id", "href", "tag_name", "text")  # sorted: the error message lists them so
NO_LISTABLE_VALUES = ("selector",)
VALUES_SCAN_LIMIT = 100_000
VALUES_RESULT_LIMIT = 100

_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def re2_escape(text: str) -> str:
    """A literal for an RE2 pattern: only metacharacters get a backslash (RE2 rejects some
    escapes Python's re.escape produces)."""
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def values_patterns(key: str, value: str | None) -> tuple[str, str]:
    """(extract regex, filter regex) for a key; both end up as query parameters."""
    if key == "tag_name":
        select_re = r"^([-_a-zA-Z0-9]*?)[\.|:]"
        filter_re = rf"^([-_a-zA-Z0-9]*?{re2_escape(value)}[-_a-zA-Z0-9]*?)[\.|:]" if value else select_re
    else:
        # The value rule of the chain parser (§2.1): shortest run not ending in a backslash, so
        # escaped quotes stay inside (`Buy \"now\"`, where PostHog's `(.*?)` stops at `Buy \`).
        select_re = f'[:|"]{key}="(.*?[^\\\\])"'
        # The substring must lie inside that key's own value: the runs around it cannot cross an
        # unescaped quote (PostHog's `.*?` there also matches text of later pairs and elements).
        inside = r'(?:[^"\\]|\\.)*'
        # Quotes are stored escaped (`\"`), so a typed `"` is looked for the same way.
        literal = re2_escape(value.replace('"', '\\"')) if value else ""
        filter_re = f'[:|"]{key}="{inside}?{literal}{inside}"' if value else select_re
    return select_re, filter_re


# Fixed text: identifiers are constants, every value a server-side parameter.
_VALUES_SQL = """
SELECT extract(chain, {select_re:String}) AS value, count() AS occurrences
FROM (
    SELECT elements_chain AS chain
    FROM events
    WHERE team_id = {team:Int64}
      AND event = {event:String}
      AND elements_chain != ''
      AND match(elements_chain, {filter_re:String})
    LIMIT {scan_limit:UInt32}
)
GROUP BY value
ORDER BY occurrences DESC, value ASC
LIMIT {result_limit:UInt32}
"""


async def element_values(
    clickhouse: ClickHouseExecutor, *, environment_id: int, key: str | None, value: str | None, settings: Settings
) -> list[dict[str, Any]]:
    if key in NO_LISTABLE_VALUES:
        return []  # selectors are computed by the UI, not stored in chains
    if key not in VALUES_KEYS:
        raise ValidationFailed(f"key must be one of {', '.join(VALUES_KEYS)}")
    select_re, filter_re = values_patterns(key, value)
    params = {
        "select_re": select_re, "filter_re": filter_re, "team": environment_id, "event": "$autocapture",
        "scan_limit": VALUES_SCAN_LIMIT, "result_limit": VALUES_RESULT_LIMIT,
    }
    result = await run_clickhouse(clickhouse, _VALUES_SQL, params, settings=settings, max_rows=VALUES_RESULT_LIMIT)
    return [{"name": row[0]} for row in result.rows]


async def run_clickhouse(clickhouse: ClickHouseExecutor, sql: str, params: dict[str, Any], *, settings: Settings,
                         max_rows: int):
    """Execute with the service's limits; engine failures become 4xx/504, never a bare 500."""
    exec_settings = ExecuteSettings(
        max_execution_time=settings.query_timeout_seconds,
        max_memory_usage=settings.query_max_memory_bytes,
        max_result_rows=max_rows,
    )
    try:
        return await clickhouse.execute(sql, params, settings=exec_settings)
    except ClickHouseTimeout:
        raise QueryTimeout(f"The query took longer than {settings.query_timeout_seconds} s and was stopped; "
                           "narrow the date range or the filters.") from None
    except ClickHouseUnavailable:
        raise ServiceUnavailable() from None
    except ClickHouseError as exc:
        line = (str(exc).strip().splitlines() or ["unknown error"])[0][:500]
        raise QueryError(f"The query could not be run: {line}", code="query_failed") from None

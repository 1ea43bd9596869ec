"""Cohort metadata the query engine needs (spec/QUERY_ENGINE.md §5.6, §7.5): looked up only for the
cohort ids a query names, so queries without cohorts cost no extra round trip."""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.cohort import Cohort
from app.query_engine.scope import CohortInfo


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def cohort_ids(*docs: Any) -> set[int]:
    """Ids of cohort filters (`{"type": "cohort", "value": id}`) and cohort breakdowns anywhere in
    the given JSON documents (a query, an environment's test-account filters)."""
    found: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "cohort" and _as_id(node.get("value")) is not None:
                found.add(_as_id(node["value"]))  # type: ignore[arg-type]
            if node.get("breakdown_type") == "cohort":
                items = node.get("breakdown")
                for item in items if isinstance(items, list) else [items]:
                    if _as_id(item) is not None:
                        found.add(_as_id(item))  # type: ignore[arg-type]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in docs:
        walk(doc)
    return found


async def cohort_metadata(session: AsyncSession, environment_id: int, ids: Iterable[int]) -> dict[int, CohortInfo]:
    ids = sorted(set(ids))
    if not ids:
        return {}
    rows = await session.scalars(select(Cohort).where(Cohort.environment_id == environment_id, Cohort.id.in_(ids)))
    return {c.id: CohortInfo(c.id, c.name or "", c.is_static, c.version, c.deleted) for c in rows}

"""Dashboards and tiles: CRUD, and applying dashboard filters to an insight's query (spec/API.md §3.7)."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound, ValidationFailed
from app.models import Dashboard, DashboardTile, Insight, User

WRAPPERS = {"InsightVizNode", "DataTableNode", "DataVisualizationNode"}


def _dashboards_of(environment_id: int) -> Select:
    return select(Dashboard).where(Dashboard.environment_id == environment_id, Dashboard.deleted.is_(False))


async def check_dashboard_ids(session: AsyncSession, environment_id: int, ids: list[int]) -> dict[int, Dashboard]:
    """Every id must be a live dashboard of this environment; all are checked before any write."""
    found = {d.id: d for d in (await session.scalars(_dashboards_of(environment_id).where(Dashboard.id.in_(ids)))).all()}
    for dashboard_id in ids:
        if dashboard_id not in found:
            raise ValidationFailed(f'Invalid pk "{dashboard_id}" - object does not exist.', code="does_not_exist",
                                   attr="dashboards")
    return found


async def get_dashboard(session: AsyncSession, environment_id: int, dashboard_id: int) -> Dashboard:
    dashboard = await session.scalar(_dashboards_of(environment_id).where(Dashboard.id == dashboard_id))
    if dashboard is None:
        raise NotFound()
    return dashboard


async def list_dashboards(session: AsyncSession, environment_id: int, *, limit: int, offset: int) -> tuple[int, list[Dashboard]]:
    from sqlalchemy import func

    count = await session.scalar(select(func.count()).select_from(_dashboards_of(environment_id).subquery()))
    rows = (await session.scalars(_dashboards_of(environment_id).order_by(Dashboard.id).limit(limit).offset(offset))).all()
    return int(count or 0), list(rows)


def _validate(data: dict[str, Any]) -> None:
    for name in ("filters", "variables"):
        if name in data and not isinstance(data[name], dict):
            raise ValidationFailed(f'Expected a dictionary of items but got type "{type(data[name]).__name__}".',
                                   code="not_a_dict", attr=name)
    for name in ("name", "description"):
        if name in data and data[name] is not None and not isinstance(data[name], str):
            raise ValidationFailed("Not a valid string.", code="invalid_input", attr=name)
    if data.get("name") is not None and len(data["name"]) > 400:
        raise ValidationFailed("Ensure this field has no more than 400 characters.", code="max_length", attr="name")
    if "tiles" in data and not isinstance(data["tiles"], list):
        raise ValidationFailed(f'Expected a list of items but got type "{type(data["tiles"]).__name__}".',
                               code="not_a_list", attr="tiles")


async def create_dashboard(session: AsyncSession, *, environment_id: int, user: User, data: dict[str, Any]) -> Dashboard:
    _validate(data)
    dashboard = Dashboard(
        environment_id=environment_id, name=data.get("name"), description=data.get("description") or "",
        filters=data.get("filters") or {}, variables=data.get("variables") or {}, pinned=bool(data.get("pinned")),
        creation_mode="unlisted" if data.get("creation_mode") == "unlisted" else "default", created_by_id=user.id,
    )
    session.add(dashboard)
    await session.flush()
    return dashboard


async def update_dashboard(session: AsyncSession, *, dashboard: Dashboard, data: dict[str, Any]) -> Dashboard:
    _validate(data)
    for name in ("name", "filters", "variables", "pinned"):
        if name in data:
            setattr(dashboard, name, data[name] if name != "filters" else (data[name] or {}))
    if "description" in data:
        dashboard.description = data["description"] or ""
    if "deleted" in data:
        dashboard.deleted = bool(data["deleted"])
    if "tiles" in data:
        await _update_tiles(session, dashboard, data["tiles"])
    await session.flush()
    return dashboard


async def _update_tiles(session: AsyncSession, dashboard: Dashboard, tiles: list[Any]) -> None:
    """Tiles are updated by id: `color`, `layouts`, `filters_overrides`, `deleted`."""
    current = {t.id: t for t in (await session.scalars(
        select(DashboardTile).where(DashboardTile.dashboard_id == dashboard.id))).all()}
    for index, raw in enumerate(tiles):
        tile = current.get(raw.get("id")) if isinstance(raw, dict) else None
        if tile is None:
            raise ValidationFailed("Tile not found on this dashboard.", code="does_not_exist", attr=f"tiles__{index}")
        if "color" in raw:
            tile.color = raw["color"]
        if "layouts" in raw:
            tile.layouts = raw["layouts"] if isinstance(raw["layouts"], dict) else {}
        if "filters_overrides" in raw:
            tile.filters_overrides = raw["filters_overrides"] if isinstance(raw["filters_overrides"], dict) else None
        if "deleted" in raw:
            tile.deleted = bool(raw["deleted"])


async def tiles_with_insights(session: AsyncSession, dashboard_ids: list[int]) -> list[tuple[DashboardTile, Insight]]:
    rows = await session.execute(
        select(DashboardTile, Insight).join(Insight, Insight.id == DashboardTile.insight_id)
        .where(DashboardTile.dashboard_id.in_(dashboard_ids), Insight.deleted.is_(False),
               DashboardTile.deleted.is_not(True))
        .order_by(DashboardTile.id)
    )
    return [(t, i) for t, i in rows.all()]


def apply_dashboard(query: dict[str, Any] | None, filters: dict[str, Any] | None,
                    variables: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored query with dashboard filters and variables applied (PostHog's
    `apply_dashboard_filters_to_dict` for the fields dashboards carry)."""
    if not isinstance(query, dict) or (not filters and not variables):
        return query
    result = copy.deepcopy(query)
    source = result.get("source") if result.get("kind") in WRAPPERS and isinstance(result.get("source"), dict) else result
    filters = filters or {}
    if filters.get("date_from") is not None or filters.get("date_to") is not None:
        date_range = dict(source.get("dateRange") or {})
        if "date_from" in filters:
            date_range["date_from"] = filters["date_from"]
        if "date_to" in filters:
            date_range["date_to"] = filters["date_to"]
        if filters.get("explicitDate") is not None:
            date_range["explicitDate"] = filters["explicitDate"]
        source["dateRange"] = date_range
        compare = source.get("compareFilter")
        if filters.get("date_from") == "all" and source.get("kind") == "TrendsQuery" and isinstance(compare, dict) \
                and compare.get("compare"):
            # PostHog's trends runner switches compare off for a dashboard's "All time" override (spec §8)
            source["compareFilter"] = {**compare, "compare": False}
    if filters.get("properties"):
        extra = filters["properties"]
        own = source.get("properties")
        if isinstance(own, list) and isinstance(extra, list):
            source["properties"] = own + extra
        elif own:
            source["properties"] = {"type": "AND", "values": [
                own if isinstance(own, dict) else {"type": "AND", "values": own},
                extra if isinstance(extra, dict) else {"type": "AND", "values": extra}]}
        else:
            source["properties"] = extra
    if filters.get("breakdown_filter"):
        source["breakdownFilter"] = filters["breakdown_filter"]
    if filters.get("interval"):
        source["interval"] = filters["interval"]
    if filters.get("filterTestAccounts") is not None:
        source["filterTestAccounts"] = filters["filterTestAccounts"]
    if variables and isinstance(source.get("variables"), dict):
        for var_id, override in variables.items():
            if var_id in source["variables"] and isinstance(override, dict):
                source["variables"][var_id] = {**source["variables"][var_id], **override}
    return result


def dashboard_repr(dashboard: Dashboard, tiles: list[tuple[DashboardTile, Insight]] | None = None) -> dict[str, Any]:
    out = {
        "id": dashboard.id, "name": dashboard.name, "description": dashboard.description,
        "filters": dashboard.filters or {}, "variables": dashboard.variables or {}, "pinned": dashboard.pinned,
        "deleted": dashboard.deleted, "creation_mode": dashboard.creation_mode,
        "created_at": dashboard.created_at.isoformat().replace("+00:00", "Z"),
        "restriction_level": dashboard.restriction_level, "effective_restriction_level": dashboard.restriction_level,
        "effective_privilege_level": 37,
    }
    if tiles is not None:
        out["tiles"] = [{"id": t.id, "color": t.color, "layouts": t.layouts or {}, "deleted": t.deleted,
                         "filters_overrides": t.filters_overrides,
                         "insight": {"id": i.id, "short_id": i.short_id, "name": i.name,
                                     "derived_name": i.derived_name}} for t, i in tiles]
    return out

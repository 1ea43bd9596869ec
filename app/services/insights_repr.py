"""The insight representations of spec/API.md §3.1 (full) and §3.2 (basic), built for a whole page
with a fixed number of SQL statements (users, tiles, views: one each) and Redis round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Dashboard, DashboardTile, Environment, Insight, InsightViewed, User
from app.services import insights_access as access
from app.services.dashboards import apply_dashboard
from app.services.query_runner import Item, QueryRunner

RESTRICTION_EVERYONE_EDITS = 21
PRIVILEGE_CAN_EDIT = 37


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat().replace("+00:00", "Z")


def iso_ms(dt: datetime | None) -> str | None:
    """Computed timestamps carry milliseconds (§1.8)."""
    if dt is None:
        return None
    text = dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text.replace(".000Z", "Z")


def user_repr(user: User | None) -> dict[str, Any] | None:
    if user is None or not user.is_active:
        return None
    return {"id": user.id, "uuid": str(user.uuid), "distinct_id": user.distinct_id, "first_name": user.first_name,
            "last_name": user.last_name, "email": user.email, "is_email_verified": user.is_email_verified,
            "hedgehog_config": user.hedgehog_config, "role_at_organization": user.role_at_organization}


@dataclass
class DashboardContext:
    """`from_dashboard` and the override parameters of a retrieve (§3.7)."""

    dashboard_id: int | None = None
    filters_override: dict[str, Any] | None = None
    variables_override: dict[str, Any] | None = None
    tile_filters_override: dict[str, Any] | None = None


@dataclass
class ReprOptions:
    basic: bool = False
    list_mode: bool = False
    mode: str = "force_cache"
    requested: bool = False
    client_query_id: str | None = None
    dashboard: DashboardContext = field(default_factory=DashboardContext)
    search_match: dict[int, str] | None = None


@dataclass(frozen=True)
class Related:
    """What a representation reads besides the insights: other authors, and tiles with their dashboards."""

    users: dict[int, User]
    tiles: dict[int, list[tuple[DashboardTile, Dashboard]]]
    rules: list[access.Rule]


async def load_related(session: AsyncSession, insights: list[Insight], me: User) -> Related:
    """For a snapshot shared by every caller: the access rules of every member are included."""
    users, tiles, _ = await _related(session, insights, False, me)
    users.pop(me.id, None)
    rules = await access.load_rules(session, insights[0].environment_id, [i.id for i in insights]) if insights else []
    return Related(users=users, tiles=tiles, rules=rules)


async def _related(session: AsyncSession, insights: list[Insight], list_mode: bool, me: User):
    ids = [i.id for i in insights]
    # The requesting user is already loaded; only other authors need a query.
    user_ids = {u for i in insights for u in (i.created_by_id, i.last_modified_by_id) if u and u != me.id}
    users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(user_ids)))).all()} if user_ids else {}
    users[me.id] = me
    tiles: dict[int, list[tuple[DashboardTile, Dashboard]]] = {i: [] for i in ids}
    if ids:
        rows = await session.execute(
            select(DashboardTile, Dashboard).join(Dashboard, Dashboard.id == DashboardTile.dashboard_id)
            .where(DashboardTile.insight_id.in_(ids), Dashboard.deleted.is_(False)).order_by(DashboardTile.id))
        for tile, dashboard in rows.all():
            tiles[tile.insight_id].append((tile, dashboard))
    views: dict[int, datetime] = {}
    if list_mode and ids:
        rows = await session.execute(
            select(InsightViewed.insight_id, func.max(InsightViewed.last_viewed_at))
            .where(InsightViewed.insight_id.in_(ids)).group_by(InsightViewed.insight_id))
        views = dict(rows.all())
    return users, tiles, views


async def represent(session: AsyncSession, *, env: Environment, user: User, insights: list[Insight],
                    runner: QueryRunner | None, options: ReprOptions,
                    preloaded: Related | None = None) -> list[dict[str, Any]]:
    """`preloaded`: the users and tiles of a retrieve's snapshot (app/services/insights_snapshot.py)."""
    viewer = await access.viewer_for(session, env, user)
    if preloaded is not None and not options.list_mode:
        users, tiles, views, rules = {**preloaded.users, user.id: user}, preloaded.tiles, {}, preloaded.rules
    else:
        users, tiles, views = await _related(session, insights, options.list_mode, user)
        # Creators and admins are managers anyway: rules matter only for others' insights.
        others = [i.id for i in insights if i.created_by_id != user.id]
        rules = await access.load_rules(session, env.id, others) if others and not viewer.admin else []
    effective: list[dict[str, Any] | None] = []
    matched_tiles: list[tuple[DashboardTile, Dashboard] | None] = []
    for insight in insights:
        query, tile = _effective_query(insight, tiles[insight.id], options.dashboard)
        effective.append(query)
        matched_tiles.append(tile)
    results: list[dict[str, Any] | None] = [None] * len(insights)
    if not options.basic and runner is not None:
        items = [Item(query=q, insight_id=i.id, dashboard_id=t[1].id if t else None)
                 for q, i, t in zip(effective, insights, matched_tiles)]
        results = await runner.resolve_many(items, options.mode, requested=options.requested,
                                            client_query_id=options.client_query_id)
    out = []
    for insight, query, tile, result in zip(insights, effective, matched_tiles, results):
        live = [(t, d) for t, d in tiles[insight.id] if not t.deleted]
        common = {
            "id": insight.id, "short_id": insight.short_id, "name": insight.name, "derived_name": insight.derived_name,
            "filters": {} if insight.query is not None else (insight.filters or {}), "query": query,
            "dashboards": [d.id for _, d in live],
            "dashboard_tiles": [{"id": t.id, "dashboard_id": d.id, "deleted": t.deleted} for t, d in live],
            "description": insight.description, "saved": insight.saved, "tags": list(insight.tags or []),
            "updated_at": iso(insight.updated_at), "created_by": user_repr(users.get(insight.created_by_id)),
            "created_at": iso(insight.created_at), "last_modified_at": iso(insight.last_modified_at),
            "favorited": insight.favorited,
            "user_access_level": access.level_for(rules, insight, viewer),
            "last_viewed_at": iso_ms(views.get(insight.id)) if options.list_mode else None,
        }
        if options.basic:
            item = {**common, "last_refresh": iso(insight.legacy_last_refresh), "refreshing": False}
        else:
            result = result or {}
            item = {
                **common, "order": insight.order, "deleted": insight.deleted,
                "last_modified_by": user_repr(users.get(insight.last_modified_by_id)),
                "is_sample": insight.is_sample, "effective_restriction_level": RESTRICTION_EVERYONE_EDITS,
                "effective_privilege_level": PRIVILEGE_CAN_EDIT, "alerts": [],
                **{k: result.get(k) for k in (
                    "result", "hasMore", "columns", "hogql", "types", "resolved_date_range", "last_refresh",
                    "cache_target_age", "next_allowed_client_refresh", "timezone", "query_status", "filters_hash")},
                "is_cached": bool(result.get("is_cached")),
            }
            if tile is not None:
                item["color"] = tile[0].color
                item["layouts"] = tile[0].layouts or {}
        if options.search_match is not None:
            item["search_match_type"] = options.search_match.get(insight.id, "similar")
        out.append(item)
    return out


def _effective_query(insight: Insight, tiles: list[tuple[DashboardTile, Dashboard]], ctx: DashboardContext):
    query = insight.query
    tile = None
    if ctx.dashboard_id is not None:
        tile = next(((t, d) for t, d in tiles if d.id == ctx.dashboard_id and not t.deleted), None)
    filters: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    if tile is not None:
        dashboard = tile[1]
        filters = dict(dashboard.filters or {})
        variables = dict(dashboard.variables or {})
        if tile[0].filters_overrides:
            filters = dict(tile[0].filters_overrides)  # a tile's own filters replace the dashboard's
    if ctx.filters_override:
        filters.update(ctx.filters_override)
    if ctx.tile_filters_override:
        filters = dict(ctx.tile_filters_override)
    if ctx.variables_override:
        variables.update(ctx.variables_override)
    return apply_dashboard(query, filters, variables), tile

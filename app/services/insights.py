"""Insight use-cases: create, look up, update, soft delete, record views (spec/API.md §3.6–§3.9)."""

from __future__ import annotations

import secrets
import string

from sqlalchemy import literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.errors import NotFound
from app.models import Dashboard, DashboardTile, Insight, InsightViewed, User
from app.schemas.insights import InsightWrite
from app.services import activity
from app.services.dashboards import check_dashboard_ids

SHORT_ID_ALPHABET = string.ascii_letters + string.digits


def generate_short_id() -> str:
    return "".join(secrets.choice(SHORT_ID_ALPHABET) for _ in range(8))


async def _unique_short_id(session: AsyncSession, environment_id: int) -> str:
    while True:  # 62^8 ids: a collision is rare, so retrying is cheap
        candidate = generate_short_id()
        taken = await session.scalar(select(Insight.id).where(
            Insight.environment_id == environment_id, Insight.short_id == candidate))
        if taken is None:
            return candidate


async def get_insight(session: AsyncSession, environment_id: int, ref: str, *, short_id: str | None = None,
                      include_deleted: bool = False) -> Insight:
    """`ref` is a primary key or a short_id; a numeric ref is tried as a pk first (§3.7)."""
    base = select(Insight).where(Insight.environment_id == environment_id)
    if not include_deleted:
        base = base.where(Insight.deleted.is_(False))
    if short_id:  # [PostHog quirk, copied] the query parameter filters detail lookups too (empty: ignored)
        base = base.where(Insight.short_id == short_id)
    found = None
    if ref.isdigit() and len(ref) < 10:
        found = await session.scalar(base.where(Insight.id == int(ref)))
    if found is None:
        found = await session.scalar(base.where(Insight.short_id == ref))
    if found is None:
        raise NotFound()
    return found


async def record_view(session: AsyncSession, *, insight: Insight, user: User) -> None:
    await record_views(session, environment_id=insight.environment_id, user=user, insight_ids=[insight.id])


async def record_views(session: AsyncSession, *, environment_id: int, user: User, insight_ids: list[int]) -> None:
    """The caller viewed these insights now (PostHog's `POST insights/viewed/`): ids that are not
    live insights of this environment are skipped. One statement whatever the count."""
    if not insight_ids:
        return
    now = clock.now()
    live = select(Insight.id).where(Insight.environment_id == environment_id, Insight.id.in_(insight_ids),
                                    Insight.deleted.is_(False))
    rows = select(literal(environment_id), live.subquery().c.id, literal(user.id), literal(now))
    stmt = insert(InsightViewed).from_select(["environment_id", "insight_id", "user_id", "last_viewed_at"], rows)
    await session.execute(stmt.on_conflict_do_update(constraint="uq_insight_viewed_insight_id",
                                                     set_={"last_viewed_at": now}))


async def dashboards_of(session: AsyncSession, insight_id: int) -> list[dict]:
    rows = await session.execute(
        select(Dashboard.id, Dashboard.name).join(DashboardTile, DashboardTile.dashboard_id == Dashboard.id)
        .where(DashboardTile.insight_id == insight_id, DashboardTile.deleted.is_not(True),
               Dashboard.deleted.is_(False)).order_by(DashboardTile.id)
    )
    return [{"id": i, "name": n} for i, n in rows.all()]


async def _set_dashboards(session: AsyncSession, insight: Insight, ids: list[int]) -> None:
    tiles = {t.dashboard_id: t for t in (await session.scalars(
        select(DashboardTile).where(DashboardTile.insight_id == insight.id))).all()}
    for dashboard_id, tile in tiles.items():
        if dashboard_id not in ids and not tile.deleted:
            tile.deleted = True
    for dashboard_id in ids:
        tile = tiles.get(dashboard_id)
        if tile is None:
            session.add(DashboardTile(dashboard_id=dashboard_id, insight_id=insight.id, layouts={}))
        elif tile.deleted:
            tile.deleted = False


async def create_insight(session: AsyncSession, *, environment_id: int, user: User, data: InsightWrite) -> Insight:
    v = data.values
    if v.get("dashboards"):
        await check_dashboard_ids(session, environment_id, v["dashboards"])
    now = clock.now()
    insight = Insight(
        environment_id=environment_id, short_id=await _unique_short_id(session, environment_id),
        name=v.get("name"), derived_name=v.get("derived_name"), description=v.get("description"),
        filters=v.get("filters") or {}, query=v.get("query"), order=v.get("order"),
        deleted=bool(v.get("deleted", False)), saved=v.get("saved", True), favorited=bool(v.get("favorited", False)),
        tags=v.get("tags") or [], is_sample=False, created_at=now, updated_at=now, last_modified_at=now,
        created_by_id=user.id, last_modified_by_id=user.id,
    )
    session.add(insight)
    await session.flush()
    if v.get("dashboards"):
        await _set_dashboards(session, insight, v["dashboards"])
    await record_view(session, insight=insight, user=user)
    await activity.log_activity(session, insight=insight, user=user, activity="created", change_list=None)
    await session.flush()
    return insight


MATERIAL = ("name", "description", "filters")


async def update_insight(session: AsyncSession, *, insight: Insight, user: User, data: InsightWrite) -> Insight:
    v = data.values
    if "dashboards" in v and not v.get("deleted"):
        await check_dashboard_ids(session, insight.environment_id, v["dashboards"])
    before = activity.snapshot(insight, await dashboards_of(session, insight.id))
    now = clock.now()
    for name in ("name", "derived_name", "description", "query", "order", "favorited", "tags"):
        if name in v:
            setattr(insight, name, v[name])
    if "filters" in v:
        insight.filters = v["filters"]
    insight.saved = v.get("saved", True)
    insight.is_sample = False
    insight.updated_at = now
    if any(name in v for name in MATERIAL):  # [PostHog quirk, copied] key presence, not value change
        insight.last_modified_at = now
        insight.last_modified_by_id = user.id
    if "deleted" in v:
        insight.deleted = v["deleted"]
        if v["deleted"]:
            await session.execute(update(DashboardTile).where(DashboardTile.insight_id == insight.id,
                                                              DashboardTile.deleted.is_not(True)).values(deleted=True))
    if "dashboards" in v and not v.get("deleted"):
        await _set_dashboards(session, insight, v["dashboards"])
    await session.flush()
    after = activity.snapshot(insight, await dashboards_of(session, insight.id))
    if "dashboards" in v and not v.get("deleted"):  # "after" lists the resulting set in request order
        order = {d: i for i, d in enumerate(v["dashboards"])}
        after["dashboards"] = sorted(after["dashboards"], key=lambda d: order.get(d["id"], len(order)))
    else:
        # Only a `dashboards` key is logged as a dashboards change (as PostHog): the tiles a soft
        # delete hides are not.
        after["dashboards"] = before["dashboards"]
    change_list = activity.changes(before, after)
    kind = "updated"
    if before["deleted"] is False and after["deleted"] is True:
        kind = "deleted"
    elif before["deleted"] is True and after["deleted"] is False:
        kind = "restored"
    await activity.log_activity(session, insight=insight, user=user, activity=kind, change_list=change_list)
    await session.flush()
    return insight

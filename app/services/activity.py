"""Insight activity log (spec/API.md §3.10): which changes are recorded, and how entries look."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import ValidationFailed
from app.models import ActivityLog, Insight, User

SCOPE = "Insight"
# Order of changes inside one entry: tags first, dashboards last.
TRACKED = ("tags", "name", "derived_name", "description", "filters", "query", "deleted", "favorited")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def snapshot(insight: Insight, dashboards: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tags": sorted(insight.tags or []), "name": insight.name, "derived_name": insight.derived_name,
        "description": insight.description, "filters": insight.filters or {}, "query": insight.query,
        "deleted": insight.deleted, "favorited": insight.favorited, "dashboards": dashboards,
    }


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for field in TRACKED:
        old, new = before[field], after[field]
        if old == new:
            continue
        if field == "tags" or field in ("deleted", "favorited"):
            action = "changed"
        elif _empty(old):
            action, old = "created", None
        elif _empty(new):
            action, new = "deleted", None
        else:
            action = "changed"
        out.append({"type": SCOPE, "action": action, "field": field, "before": old, "after": new})
    old_ids = sorted(d["id"] for d in before["dashboards"])
    new_ids = sorted(d["id"] for d in after["dashboards"])
    if old_ids != new_ids:
        out.append({"type": SCOPE, "action": "changed", "field": "dashboards",
                    "before": sorted(before["dashboards"], key=lambda d: d["id"]), "after": after["dashboards"]})
    return out


def display_name(insight: Insight) -> str | None:
    return insight.name or insight.derived_name or None


async def log_activity(session: AsyncSession, *, insight: Insight, user: User | None, activity: str,
                       change_list: list[dict[str, Any]] | None) -> None:
    """Written only for named insights, and an update without changes writes nothing."""
    if not display_name(insight):
        return
    if activity != "created" and not change_list:
        return
    session.add(ActivityLog(
        environment_id=insight.environment_id, scope=SCOPE, item_id=str(insight.id), activity=activity,
        user_id=user.id if user else None, is_system=user is None,
        detail={"changes": change_list if activity != "created" else None, "trigger": None, "type": None,
                "name": display_name(insight), "short_id": insight.short_id},
    ))


def _page_param(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValidationFailed("A valid integer is required." if value == 0 and not raw.lstrip("-").isdigit()
                               else "Ensure this value is greater than or equal to 1.", code="invalid_input", attr=name)
    return value


async def list_activity(session: AsyncSession, *, environment_id: int, item_id: int | None,
                        raw_limit: str | None, raw_page: str | None) -> tuple[list[dict[str, Any]], int, int, int]:
    limit = _page_param(raw_limit, "limit", 10)
    page = _page_param(raw_page, "page", 1)
    where = [ActivityLog.environment_id == environment_id, ActivityLog.scope == SCOPE]
    if item_id is not None:
        where.append(ActivityLog.item_id == str(item_id))
    total = int(await session.scalar(select(func.count()).select_from(ActivityLog).where(*where)) or 0)
    if page > 1 and (page - 1) * limit >= total:
        raise ValidationFailed("Invalid page.", code="invalid_input", attr="page")
    rows = (await session.execute(
        select(ActivityLog, User).outerjoin(User, User.id == ActivityLog.user_id).where(*where)
        .order_by(ActivityLog.created_at.desc(), ActivityLog.id.desc()).limit(limit).offset((page - 1) * limit)
    )).all()
    return [_entry(entry, user) for entry, user in rows], total, page, limit


def _entry(entry: ActivityLog, user: User | None) -> dict[str, Any]:
    if user is None:
        who: dict[str, Any] = {"first_name": "System", "email": None, "is_system": True}
    else:
        who = {"first_name": user.first_name, "email": user.email}
    return {
        "id": str(entry.id), "user": who, "activity": entry.activity, "scope": entry.scope, "item_id": entry.item_id,
        "detail": entry.detail, "created_at": entry.created_at.isoformat().replace("+00:00", "Z"),
    }

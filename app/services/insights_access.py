"""Object-level access to insights (spec/API.md §3.5.4), from `access_control` rows.

A user's level on an insight ("none", "viewer", "editor", "manager") is, highest priority first: a
rule for that insight and that member; a rule for every insight and that member; the insight's
default rule (no member); the default for every insight; else "editor". Creators and organization
admins are always "manager" (PostHog's documented precedence). Insights at "none" are left out of
lists, and reading one answers 403; changing one needs "editor".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, and_, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import membership
from app.errors import PermissionDenied
from app.models import AccessControl, Environment, Insight, User

RESOURCE = "insight"
DEFAULT_LEVEL = "editor"
ADMIN_LEVEL = 8
_RANK = {"none": 0, "viewer": 1, "editor": 2, "manager": 3}


@dataclass(frozen=True)
class Rule:
    resource_id: str | None
    member_id: int | None
    level: str


@dataclass(frozen=True)
class Viewer:
    """Who is asking: the user, their membership of the environment's organization, admin or not."""

    user_id: int
    member_id: int | None
    admin: bool


async def viewer_for(session: AsyncSession, environment: Environment, user: User) -> Viewer:
    # Usually answered by the authentication cache, which the request's own membership check filled.
    found = await membership(session, user.id, environment.organization_id)
    return Viewer(user_id=user.id, member_id=found[0] if found else None,
                  admin=bool(found and found[1] >= ADMIN_LEVEL))


async def load_rules(session: AsyncSession, environment_id: int, insight_ids: list[int]) -> list[Rule]:
    """Every rule that can apply to these insights, for any member (one statement)."""
    rows = await session.execute(
        select(AccessControl.resource_id, AccessControl.organization_member_id, AccessControl.access_level)
        .where(AccessControl.environment_id == environment_id, AccessControl.resource == RESOURCE,
               or_(AccessControl.resource_id.in_([str(i) for i in insight_ids]), AccessControl.resource_id.is_(None)))
    )
    return [Rule(r, m, level) for r, m, level in rows.all()]


def level_for(rules: list[Rule], insight: Insight, viewer: Viewer) -> str:
    if viewer.admin or insight.created_by_id == viewer.user_id:
        return "manager"
    own = str(insight.id)
    tiers = (
        lambda r: r.resource_id == own and r.member_id is not None and r.member_id == viewer.member_id,
        lambda r: r.resource_id is None and r.member_id is not None and r.member_id == viewer.member_id,
        lambda r: r.resource_id == own and r.member_id is None,
        lambda r: r.resource_id is None and r.member_id is None,
    )
    for matches in tiers:
        levels = [r.level for r in rules if matches(r)]
        if levels:
            return max(levels, key=lambda level: _RANK.get(level, 0))
    return DEFAULT_LEVEL


def require(rules: list[Rule], insight: Insight, viewer: Viewer, needed: str) -> None:
    if _RANK.get(level_for(rules, insight, viewer), 0) < _RANK[needed]:
        raise PermissionDenied(f"You do not have {needed} access to this resource.")


def hidden_from_lists(environment_id: int, viewer: Viewer) -> ColumnElement[bool] | None:
    """A WHERE condition true for the insights this viewer may not see (None: nothing is hidden)."""
    if viewer.admin:
        return None
    own = cast(Insight.id, String)

    def all_none(resource_match, member_match):
        # NULL when the tier has no rule; within a tier the most permissive rule wins (as level_for).
        return (select(func.bool_and(AccessControl.access_level == "none"))
                .where(AccessControl.environment_id == environment_id, AccessControl.resource == RESOURCE,
                       resource_match, member_match).scalar_subquery())

    member = (AccessControl.organization_member_id == viewer.member_id) if viewer.member_id is not None \
        else literal(False)
    everyone = AccessControl.organization_member_id.is_(None)
    denied = func.coalesce(all_none(AccessControl.resource_id == own, member),
                           all_none(AccessControl.resource_id.is_(None), member),
                           all_none(AccessControl.resource_id == own, everyone),
                           all_none(AccessControl.resource_id.is_(None), everyone), literal(False))
    return and_(or_(Insight.created_by_id.is_(None), Insight.created_by_id != viewer.user_id), denied)

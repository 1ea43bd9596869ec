"""`GET insights/`: filters, search and ordering (spec/API.md §3.5), one SELECT for the page and one
COUNT, whatever the page size."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, and_, case, cast, exists, func, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.errors import QueryError, ValidationFailed
from app.models import Dashboard, DashboardTile, Environment, Insight, InsightViewed, User
from app.query_engine.dates import parse_date
from app.schemas.insights import truthy
from app.services import insights_access as access

MAX_SEARCH = 200
TYPED = {"TRENDS": "TrendsQuery", "FUNNELS": "FunnelsQuery", "RETENTION": "RetentionQuery", "PATHS": "PathsQuery",
         "STICKINESS": "StickinessQuery", "LIFECYCLE": "LifecycleQuery"}
WRAPPERS = ("InsightVizNode", "DataTableNode", "DataVisualizationNode")
FEATURE_FLAG_INSIGHTS = ("Feature Flag Called Total Volume", "Feature Flag calls made by unique users per variant")
ORDER_FIELDS = {"name": Insight.name, "created_at": Insight.created_at, "last_modified_at": Insight.last_modified_at,
                "id": Insight.id, "updated_at": Insight.updated_at, "order": Insight.order,
                "short_id": Insight.short_id, "favorited": Insight.favorited,
                # Any model field orders in PostHog (Django's order_by); these are the other plain ones.
                "pk": Insight.id, "derived_name": Insight.derived_name, "description": Insight.description,
                "saved": Insight.saved, "deleted": Insight.deleted, "is_sample": Insight.is_sample,
                "created_by": Insight.created_by_id, "last_modified_by": Insight.last_modified_by_id}


def _json_list(params: dict[str, str], name: str) -> list[Any] | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValidationFailed(f"Invalid JSON passed in {name} parameter", code="invalid_input", attr=name) from None
    if not isinstance(value, list):
        value = [value]
    return value


def _ints(name: str, values: list[Any]) -> list[int]:
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValidationFailed(f"{name} must be a JSON array of ids.", code="invalid_input", attr=name) from None


def _date(env: Environment, params: dict[str, str], name: str):
    raw = params.get(name)
    if not raw:
        return None
    try:
        return parse_date(raw, ZoneInfo(env.timezone or "UTC"), clock.now(), path=name).value
    except QueryError as exc:
        raise ValidationFailed(exc.detail, code="invalid_input", attr=name) from None


def _kind(path: str):
    return Insight.query[path].as_string() if path == "kind" else Insight.query["source"]["kind"].as_string()


def _insight_type(value: str):
    kind, source_kind = _kind("kind"), _kind("source")
    legacy = and_(Insight.query.is_(None), Insight.filters["insight"].as_string() == value)
    if value in TYPED:
        return or_(and_(kind == "InsightVizNode", source_kind == TYPED[value]), legacy)
    if value == "SQL":
        return and_(kind.in_(WRAPPERS), source_kind == "HogQLQuery")
    if value == "JSON":
        typed = and_(kind == "InsightVizNode", source_kind.in_(list(TYPED.values())))
        sql = and_(kind.in_(WRAPPERS), source_kind == "HogQLQuery")
        return and_(Insight.query.is_not(None), not_(func.coalesce(or_(typed, sql), False)))
    return legacy


def _last_viewed():
    return (select(func.max(InsightViewed.last_viewed_at)).where(InsightViewed.insight_id == Insight.id)
            .correlate(Insight).scalar_subquery())


def clean_search(raw: str | None) -> str | None:
    if raw is None:
        return None
    if len(raw) > MAX_SEARCH:
        raise ValidationFailed(f"Search query must be {MAX_SEARCH} characters or fewer.", code="invalid_input",
                               attr="search")
    term = raw.replace("\x00", "").strip()
    return term or None


def build_list_query(env: Environment, user: User, params: dict[str, str],
                     viewer: access.Viewer | None = None) -> tuple[Select, Any, str | None]:
    """The filtered SELECT (ordered), and the search tier expression (None without search)."""
    stmt = select(Insight).where(Insight.environment_id == env.id, Insight.deleted.is_(False))
    hidden = access.hidden_from_lists(env.id, viewer) if viewer is not None else None
    if hidden is not None:  # insights this user was denied (§3.5.4)
        stmt = stmt.where(not_(hidden))
    if params.get("short_id"):
        stmt = stmt.where(Insight.short_id == params["short_id"])
    if "saved" in params:
        if truthy(params["saved"]):
            on_listed = exists(select(DashboardTile.id).join(Dashboard, Dashboard.id == DashboardTile.dashboard_id)
                               .where(DashboardTile.insight_id == Insight.id, DashboardTile.deleted.is_not(True),
                                      Dashboard.deleted.is_(False), Dashboard.creation_mode != "unlisted"))
            stmt = stmt.where(or_(Insight.saved.is_(True), on_listed))
        else:
            stmt = stmt.where(Insight.saved.is_(False))
    if "favorited" in params:  # [PostHog quirk, copied] presence, not value
        stmt = stmt.where(Insight.favorited.is_(True))
    if "user" in params:  # [PostHog quirk, copied] presence, not value
        stmt = stmt.where(Insight.created_by_id == user.id)
    created_by = _json_list(params, "created_by")
    if created_by:
        stmt = stmt.where(Insight.created_by_id.in_(_ints("created_by", created_by)))
    if params.get("insight"):
        stmt = stmt.where(_insight_type(params["insight"]))
    for name, column in (("date_from", Insight.last_modified_at), ("created_date_from", Insight.created_at),
                         ("last_viewed_date_from", _last_viewed())):
        value = _date(env, params, name)
        if value is not None:
            stmt = stmt.where(column > value)
    for name, column in (("date_to", Insight.last_modified_at), ("created_date_to", Insight.created_at),
                         ("last_viewed_date_to", _last_viewed())):
        value = _date(env, params, name)
        if value is not None:
            stmt = stmt.where(column < value)
    dashboards = _json_list(params, "dashboards")
    for dashboard_id in _ints("dashboards", dashboards or []):
        # Tiles on deleted dashboards don't count (PostHog's default tile manager hides them).
        stmt = stmt.where(exists(select(DashboardTile.id).join(Dashboard, Dashboard.id == DashboardTile.dashboard_id)
                                 .where(DashboardTile.insight_id == Insight.id, DashboardTile.dashboard_id == dashboard_id,
                                        DashboardTile.deleted.is_not(True), Dashboard.deleted.is_(False))))
    tags = _json_list(params, "tags")
    if tags:
        stmt = stmt.where(Insight.tags.overlap(cast([str(t) for t in tags], Insight.tags.type)))
    query_text = cast(Insight.query, String)
    events = _json_list(params, "events")
    for event in events or []:
        stmt = stmt.where(query_text.contains(json.dumps(str(event), ensure_ascii=False), autoescape=True))
    if params.get("feature_flag"):
        # Case-insensitive, like PostHog: a `$feature/<flag>` breakdown in the query or the legacy
        # filters, or the bare flag name in the legacy property filters.
        flag = params["feature_flag"]
        breakdown = f"$feature/{flag}"
        stmt = stmt.where(or_(
            query_text.icontains(breakdown, autoescape=True),
            cast(Insight.filters["breakdown"], String).icontains(breakdown, autoescape=True),
            cast(Insight.filters["properties"], String).icontains(flag, autoescape=True)))
    if truthy(params.get("hide_feature_flag_insights")):
        stmt = stmt.where(or_(Insight.name.is_(None), Insight.name.not_in(FEATURE_FLAG_INSIGHTS)))
    term = clean_search(params.get("search"))
    tier = None
    if term is not None:
        stmt, tier = _search(stmt, term)
    return _order(stmt, params.get("order"), tier, term), tier, term


def _search(stmt: Select, term: str):
    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    tag_match = exists(select(literal(1)).select_from(func.unnest(Insight.tags).alias("tag"))
                       .where(literal_column_tag().ilike(pattern, escape="\\")))
    exact = or_(Insight.name.ilike(pattern, escape="\\"), Insight.derived_name.ilike(pattern, escape="\\"),
                Insight.description.ilike(pattern, escape="\\"), tag_match)
    word_sim = func.word_similarity
    similar = or_(word_sim(term, func.coalesce(Insight.name, "")) > 0.3,
                  word_sim(term, func.coalesce(Insight.derived_name, "")) > 0.3,
                  word_sim(term, func.coalesce(Insight.description, "")) > 0.4)
    tier = case((exact, 0), else_=1)
    return stmt.where(or_(exact, similar)), tier


def literal_column_tag():
    from sqlalchemy import literal_column

    return literal_column("tag")


def _score(term: str):
    return (func.word_similarity(term, func.coalesce(Insight.name, ""))
            + func.similarity(term, func.coalesce(Insight.name, ""))
            + func.word_similarity(term, func.coalesce(Insight.derived_name, ""))
            + 0.5 * func.word_similarity(term, func.coalesce(Insight.description, "")))


def _order(stmt: Select, order: str | None, tier, term: str | None) -> Select:
    if order:
        descending = order.startswith("-")
        name = order.lstrip("-")
        if name == "last_viewed_at":
            column = _last_viewed()
            return stmt.order_by(column.desc().nulls_last() if descending else column.asc().nulls_first(), Insight.id)
        column = ORDER_FIELDS.get(name)
        if column is None:
            raise ValidationFailed(f"Cannot order by {name!r}.", code="invalid_input", attr="order")
        return stmt.order_by(column.desc() if descending else column.asc(), Insight.id)
    if tier is not None and term is not None:
        return stmt.order_by(tier, _score(term).desc(), Insight.name.asc(), Insight.id)
    return stmt.order_by(Insight.order.asc().nulls_last(), Insight.id.asc())


async def list_insights(session: AsyncSession, *, env: Environment, user: User, params: dict[str, str],
                        limit: int, offset: int) -> tuple[int, list[Insight], dict[int, str] | None]:
    viewer = await access.viewer_for(session, env, user)
    stmt, tier, term = build_list_query(env, user, params, viewer)
    count = int(await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)
    if tier is None:
        rows = (await session.scalars(stmt.limit(limit).offset(offset))).all()
        return count, list(rows), None
    result = await session.execute(stmt.add_columns(tier.label("tier")).limit(limit).offset(offset))
    insights, match = [], {}
    for insight, t in result.all():
        insights.append(insight)
        match[insight.id] = "exact" if t == 0 else "similar"
    return count, insights, match

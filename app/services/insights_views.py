"""The use-cases behind each insight route: look up, write, and represent (one call per route)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import Context
from app.errors import ValidationFailed
from app.pagination import Page
from app.schemas.insights import parse_insight_body, truthy
from app.services import insights as service
from app.services import insights_access as access
from app.services import insights_snapshot as snapshots
from app.services.insight_cache import BLOCKING, FORCE_BLOCKING, FORCE_CACHE, parse_refresh
from app.services.insights_list import list_insights
from app.services.insights_repr import DashboardContext, Related, ReprOptions, represent
from app.services.query_runner import QueryRunner


def make_runner(request: Request, session: AsyncSession, ctx: Context) -> QueryRunner:
    state = request.app.state
    runner = QueryRunner(environment=ctx.env, session=session, clickhouse=state.clickhouse, redis=state.redis,
                         arq=state.arq, settings=state.settings)
    runner.arrived_at = getattr(request.state, "arrived_at", None)
    runner.release_session_before_compute = request.method == "GET"
    joining = getattr(request.state, "retrieve_join", None)
    if joining is not None:
        runner.on_computed = joining.close
    snapshots.bind(state.redis)  # so this process' insight writes reach other processes' snapshots
    return runner


def mark_arrival(request: Request) -> None:
    """Called as the route starts, before authentication: when the request arrived (monotonic;
    turned into Redis time only if the request computes a result, see QueryRunner)."""
    request.state.arrived_at = time.perf_counter()


def _refresh(request: Request, body: dict[str, Any] | None = None) -> tuple[str, bool]:
    if "refresh" in request.query_params:
        return parse_refresh(request.query_params["refresh"])
    if isinstance(body, dict) and "refresh" in body:
        return parse_refresh(body["refresh"])
    return parse_refresh(None)


def _override(request: Request, name: str) -> dict[str, Any] | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValidationFailed(f"Invalid JSON passed in {name} parameter", code="invalid_input", attr=name) from None
    if not isinstance(value, dict):
        raise ValidationFailed(f"Invalid JSON passed in {name} parameter", code="invalid_input", attr=name)
    return value


def _options(request: Request, body: dict[str, Any] | None = None, *, list_mode: bool = False) -> ReprOptions:
    mode, requested = _refresh(request, body)
    dashboard = DashboardContext()
    raw_dashboard = request.query_params.get("from_dashboard")
    if raw_dashboard and raw_dashboard.isdigit():
        dashboard.dashboard_id = int(raw_dashboard)
    dashboard.filters_override = _override(request, "filters_override")
    dashboard.variables_override = _override(request, "variables_override")
    dashboard.tile_filters_override = _override(request, "tile_filters_override")
    client_query_id = request.query_params.get("client_query_id")
    if client_query_id is None and isinstance(body, dict) and isinstance(body.get("client_query_id"), str):
        client_query_id = body["client_query_id"]
    return ReprOptions(basic=truthy(request.query_params.get("basic")), list_mode=list_mode, mode=mode,
                       requested=requested, client_query_id=client_query_id, dashboard=dashboard)


async def list_view(request: Request, session: AsyncSession, ctx: Context) -> dict[str, Any]:
    page = Page.from_request(request)
    params = dict(request.query_params)
    options = _options(request, list_mode=True)
    count, insights, match = await list_insights(session, env=ctx.env, user=ctx.user, params=params,
                                                 limit=page.limit, offset=page.offset)
    options.search_match = match
    results = await represent(session, env=ctx.env, user=ctx.user, insights=insights,
                              runner=make_runner(request, session, ctx), options=options)
    next_url, previous_url = page.links(request, count)
    return {"count": count, "next": next_url, "previous": previous_url, "results": results}


async def _one(request: Request, session: AsyncSession, ctx: Context, insight, body=None,
               preloaded: Related | None = None) -> dict[str, Any]:
    options = _options(request, body)
    [item] = await represent(session, env=ctx.env, user=ctx.user, insights=[insight],
                             runner=make_runner(request, session, ctx), options=options, preloaded=preloaded)
    return item


async def get_readable_insight(session: AsyncSession, ctx: Context, ref: str, *, short_id: str | None = None):
    """The lookup of §3.7 for the routes hanging off one insight (activity, analyze, suggestions):
    404 when it is unknown or deleted, 403 when the user was denied it."""
    insight = await service.get_insight(session, ctx.env.id, ref, short_id=short_id)
    viewer = await access.viewer_for(session, ctx.env, ctx.user)
    if not viewer.admin and insight.created_by_id != ctx.user.id:
        access.require(await access.load_rules(session, ctx.env.id, [insight.id]), insight, viewer, "viewer")
    return insight


class _Retrieval:
    """A computing retrieve in progress in this process, which identical requests of the same user
    join (API.md §4: followers get the leader's body) until its computation has finished."""

    __slots__ = ("future", "closed")

    def __init__(self) -> None:
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed = False

    def close(self) -> None:
        self.closed = True  # a request arriving from now on wants a computation at least this fresh


_retrievals: dict[tuple, _Retrieval] = {}
_JOINABLE = (FORCE_BLOCKING, BLOCKING)


async def retrieve_view(request: Request, session: AsyncSession, ctx: Context, ref: str) -> Any:
    """A retrieve; a computing one joins an identical request of the same user already computing in
    this process. Such a follower has passed its own authentication and scope checks, and the
    object permission is the same user's: it gets exactly the answer it would compute, without
    making the leader wait behind its own work (under a burst of refreshes, that work came first)."""
    if _refresh(request)[0] not in _JOINABLE:
        return await _retrieve(request, session, ctx, ref)
    key = (ctx.env.id, ctx.user.id, ref, request.scope.get("query_string", b""),
           getattr(request.state, "response_format", None))
    running = _retrievals.get(key)
    if running is not None and not running.closed:
        try:
            answer = await asyncio.shield(running.future)
        except Exception:
            answer = None  # errors are not shared: answer on our own
        if answer is not None:
            return answer
    mine = request.state.retrieve_join = _Retrieval()
    if running is None or running.closed:
        _retrievals[key] = mine
    try:
        answer = await _retrieve(request, session, ctx, ref)
    except BaseException:
        mine.future.set_result(None)
        raise
    else:
        status = answer.get("query_status") if isinstance(answer, dict) else None
        # A failed computation is not shared (the followers try for themselves).
        mine.future.set_result(None if isinstance(status, dict) and status.get("error") else answer)
        return answer
    finally:
        if _retrievals.get(key) is mine:
            del _retrievals[key]


async def _retrieve(request: Request, session: AsyncSession, ctx: Context, ref: str) -> Any:
    state = request.app.state
    short_id = request.query_params.get("short_id") or None  # empty: no filter (django-filter skips it)
    ttl = state.settings.auth_cache_seconds
    # The common case, a cached retrieve: one Redis round trip reads the cache entry and the
    # snapshot counter together. Only `force_cache` has no side effects to undo if the snapshot
    # turns out to be outdated (then the result is thrown away and the rows read again).
    snapshot = snapshots.peek(environment_id=ctx.env.id, ref=ref, short_id=short_id) if ttl > 0 else None
    if snapshot is not None:
        # The same representation again (same snapshot, caller, parameters and Redis values): its
        # JSON bytes as they were sent last time, after this caller's own checks.
        rendered = await _rendered_again(request, session, ctx, snapshot, ref, short_id)
        if rendered is not None:
            return rendered
    # Options are parsed once the insight is known to exist: lookup (404) comes before validation (400).
    options = _options(request) if snapshot is not None else None
    if snapshot is not None and options.mode == FORCE_CACHE:
        runner = make_runner(request, session, ctx)
        runner.extra_reads[snapshots.VERSION_KEY] = _UNREAD
        [item] = await represent(session, env=ctx.env, user=ctx.user, insights=[snapshot.insight], runner=runner,
                                 options=options, preloaded=snapshot.related)
        if runner.extra_reads[snapshots.VERSION_KEY] == snapshot.version:
            viewer = await access.viewer_for(session, ctx.env, ctx.user)
            access.require(snapshot.related.rules, snapshot.insight, viewer, "viewer")
            await _record_view(request, session, ctx, snapshot.insight)
            if runner.last_read is not None and getattr(request.state, "response_format", None) == "json":
                rendered = Rendered(orjson.dumps(item))
                _remember(request, ctx, snapshot, viewer, ref, short_id, runner.last_read, rendered)
                return rendered
            return item
    insight, related = await snapshots.load_for_retrieve(
        session, state.redis, environment_id=ctx.env.id, ref=ref, short_id=short_id, me=ctx.user, ttl=ttl)
    # Object permission before anything is computed or shared (coalesced followers included, §4).
    access.require(related.rules, insight, await access.viewer_for(session, ctx.env, ctx.user), "viewer")
    await _record_view(request, session, ctx, insight)
    return await _one(request, session, ctx, insight, preloaded=related)


_UNREAD = object()


class Rendered(bytes):
    """A representation already serialised as JSON (the router sends it as is)."""


@dataclass(frozen=True)
class _Sent:
    """What a cached retrieve's JSON depended on: the snapshot, caller and environment (the very
    objects of the in-process caches, replaced whenever they change), the viewer, and the Redis keys
    read with their raw values (cache entry, status, liveness, snapshot counter)."""

    snapshot: snapshots.Snapshot
    user: Any
    env: Any
    viewer: access.Viewer
    keys: list[str]
    raws: list[Any]
    body: Rendered


_SENT: dict[tuple, _Sent] = {}
_SENT_MAX = 512


def _sent_key(request: Request, ctx: Context, ref: str, short_id: str | None) -> tuple:
    # The query string carries every representation parameter of a GET (refresh mode, dashboard
    # context and overrides, client_query_id, format).
    return ctx.env.id, ctx.user.id, ref, short_id, request.scope.get("query_string", b"")


async def _rendered_again(request: Request, session: AsyncSession, ctx: Context, snapshot, ref: str,
                          short_id: str | None) -> Rendered | None:
    """One Redis round trip (the same keys the representation read) decides whether the JSON sent
    last time is still the answer; the caller's object permission and view recording run as for
    any retrieve. None: build the representation."""
    if request.method != "GET" or getattr(request.state, "response_format", None) != "json":
        return None
    sent = _SENT.get(_sent_key(request, ctx, ref, short_id))
    if sent is None or sent.snapshot is not snapshot or sent.user is not ctx.user or sent.env is not ctx.env:
        return None
    viewer = await access.viewer_for(session, ctx.env, ctx.user)
    if viewer != sent.viewer:
        return None
    try:
        raws = await request.app.state.redis.mget(sent.keys)
    except RedisError:
        return None  # the full path decides what a retrieve without Redis answers
    if list(raws) != sent.raws:
        return None
    access.require(snapshot.related.rules, snapshot.insight, viewer, "viewer")
    await _record_view(request, session, ctx, snapshot.insight)
    return sent.body


def _remember(request: Request, ctx: Context, snapshot, viewer: access.Viewer, ref: str, short_id: str | None,
              read: tuple[list[str], list[Any]], body: Rendered) -> None:
    keys, raws = read
    if snapshots.VERSION_KEY not in keys:
        return
    if len(_SENT) >= _SENT_MAX:  # bounded: forget everything rather than grow
        _SENT.clear()
    _SENT[_sent_key(request, ctx, ref, short_id)] = _Sent(snapshot, ctx.user, ctx.env, viewer, keys, raws, body)


async def _record_view(request: Request, session: AsyncSession, ctx: Context, insight) -> None:
    if await _should_record_view(request, insight.id, ctx.user.id):
        await service.record_view(session, insight=insight, user=ctx.user)


VIEW_THROTTLE_SECONDS = 60
_recent_views: dict[tuple[int, int], float] = {}


async def _should_record_view(request: Request, insight_id: int, user_id: int) -> bool:
    """A view is written at most once a minute per (insight, user) and process: a write and its
    commit would otherwise dominate the cost of serving a cached insight. The throttle lives in
    the process (no round trip); with several processes each writes at most once a minute."""
    now = time.monotonic()
    last = _recent_views.get((insight_id, user_id))
    if last is not None and now - last < VIEW_THROTTLE_SECONDS:
        return False
    if len(_recent_views) >= 50_000:  # bounded: forget everything rather than grow
        _recent_views.clear()
    _recent_views[(insight_id, user_id)] = now
    return True


async def viewed_view(session: AsyncSession, ctx: Context, body: Any) -> None:
    """`POST insights/viewed/` `{"insight_ids": [...]}` (PostHog's view tracking): ids that are not
    live insights of this environment are skipped."""
    ids = body.get("insight_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids:
        raise ValidationFailed("Must be a non-empty list of insight IDs", code="invalid_input", attr="insight_ids")
    wanted = {int(i) for i in ids if (isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63)
              or (isinstance(i, str) and i.isascii() and i.isdigit() and 0 < int(i) < 2**63)}
    await service.record_views(session, environment_id=ctx.env.id, user=ctx.user, insight_ids=sorted(wanted))


async def viewed_one_view(session: AsyncSession, ctx: Context, ref: str) -> None:
    """`POST insights/{id}/viewed/`: the caller viewed this insight now (404 as a retrieve)."""
    insight = await get_readable_insight(session, ctx, ref)
    await service.record_view(session, insight=insight, user=ctx.user)


async def create_view(request: Request, session: AsyncSession, ctx: Context, body: Any) -> dict[str, Any]:
    data = parse_insight_body(body)
    insight = await service.create_insight(session, environment_id=ctx.env.id, user=ctx.user, data=data)
    return await _one(request, session, ctx, insight, body)


async def update_view(request: Request, session: AsyncSession, ctx: Context, ref: str, body: Any) -> dict[str, Any]:
    # Only a PATCH with JSON `false` may reach a soft-deleted insight (restore, §3.8).
    restoring = request.method == "PATCH" and isinstance(body, dict) and body.get("deleted") is False
    insight = await service.get_insight(session, ctx.env.id, ref, include_deleted=restoring)
    viewer = await access.viewer_for(session, ctx.env, ctx.user)
    if not viewer.admin and insight.created_by_id != ctx.user.id:
        access.require(await access.load_rules(session, ctx.env.id, [insight.id]), insight, viewer, "editor")
    data = parse_insight_body(body)
    insight = await service.update_insight(session, insight=insight, user=ctx.user, data=data)
    return await _one(request, session, ctx, insight, body)

"""Insights API (spec/API.md §3): saved insights with cached results, activity, cancel, CSV."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from fastapi.responses import Response

from app.deps import Context, SessionDep, authorize, negotiate, read_json_body
from app.errors import AppError, ValidationFailed, error_responses
from app.services import activity as activity_service
from app.services import insights_views as views
from app.services.csv_render import render_csv


def _csv_requested(request: Request) -> bool:
    """Like `_wants_csv`, without raising for a format that cannot be produced (those errors are JSON)."""
    try:
        return negotiate(request) == "csv"
    except AppError:
        return False


class _InsightRoute(APIRoute):
    """Stamps the request's arrival, and renders the errors of a CSV list or retrieve as CSV too
    (§3.14), including those raised before the view runs: authentication, scopes, environment,
    membership and throttling (the route's dependencies). PostHog renders them with the renderer
    the request negotiated."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        csv_errors = self.name in ("list_insights", "retrieve_insight")

        async def route(request: Request) -> Response:
            views.mark_arrival(request)  # before authentication (cheaper here than as a dependency)
            try:
                return await handler(request)
            except AppError as exc:
                if not csv_errors or not _csv_requested(request):
                    raise
                response = _render(request, exc.body(), exc.status_code, csv=True)
                response.headers.update(exc.headers)
                return response

        return route


router = APIRouter(prefix="/api/environments/{environment_id}/insights", tags=["insights"],
                   route_class=_InsightRoute)

ReadCtx = Annotated[Context, authorize("insight:read", throttle="insight")]
WriteCtx = Annotated[Context, authorize("insight:write", throttle="insight")]
ActivityCtx = Annotated[Context, authorize("activity_log:read", throttle="insight")]

ERRORS = error_responses(400, 403, 404, 405, 415, 429)


def _wants_csv(request: Request) -> bool:
    return negotiate(request) == "csv"


def _render(request: Request, body: Any, status_code: int = 200, csv: bool | None = None) -> Response:
    if isinstance(body, views.Rendered):  # already JSON (only ever returned to JSON requests)
        return Response(body, status_code=status_code, media_type="application/json")
    if csv if csv is not None else _wants_csv(request):
        return Response(render_csv(body), status_code=status_code, media_type="text/csv; charset=utf-8")
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


async def _respond(request: Request, work) -> Response:
    """Run the use-case; errors of a CSV request are rendered as CSV too (§3.14)."""
    try:
        csv = _wants_csv(request)
    except AppError:
        work.close()  # never started
        raise
    try:
        body = await work
    except AppError as exc:
        if not csv:
            raise
        return _render(request, exc.body(), exc.status_code, csv=True)
    return _render(request, body, csv=csv)


@router.get("/", responses=ERRORS)
async def list_insights(request: Request, session: SessionDep, ctx: ReadCtx) -> Response:
    """List saved insights with filters, search and results per the refresh mode."""
    return await _respond(request, views.list_view(request, session, ctx))


@router.post("/", status_code=201, responses=ERRORS)
async def create_insight(request: Request, session: SessionDep, ctx: WriteCtx) -> Response:
    """Create an insight."""
    body = await read_json_body(request)
    result = await views.create_view(request, session, ctx, body)
    return _render(request, result, 201, csv=False)


@router.get("/activity/", responses=ERRORS)
async def environment_activity(request: Request, session: SessionDep, ctx: ActivityCtx) -> dict:
    """Activity of every insight of this environment, newest first."""
    return await _activity_page(request, session, ctx, None)


@router.post("/cancel/", status_code=201, responses=ERRORS)
async def cancel_query(request: Request, session: SessionDep, ctx: WriteCtx) -> Response:
    """Stop a running query of this environment tagged with `client_query_id`."""
    body = await read_json_body(request)
    if not isinstance(body, dict) or "client_query_id" not in body:
        raise ValidationFailed("Field is required.", code="invalid_input", attr="client_query_id")
    runner = views.make_runner(request, session, ctx)
    await runner.cancel(str(body["client_query_id"]))
    return Response(status_code=201)


_VIEWED_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["insight_ids"],
    "properties": {"insight_ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1}}}}}}}


@router.post("/viewed/", status_code=201, response_class=Response, responses=ERRORS, openapi_extra=_VIEWED_BODY)
async def record_views(request: Request, session: SessionDep, ctx: ReadCtx) -> Response:
    """Record that the caller viewed these insights now (`last_viewed_at` in lists, `-last_viewed_at`
    ordering). Ids that are not live insights of this environment are skipped. Answers 201, no body."""
    await views.viewed_view(session, ctx, await read_json_body(request))
    return Response(status_code=201)


@router.post("/{ref}/viewed/", status_code=201, response_class=Response, responses=ERRORS)
async def record_view(ref: str, session: SessionDep, ctx: ReadCtx) -> Response:
    """Record that the caller viewed this insight (id or short_id) now. Answers 201, no body."""
    await views.viewed_one_view(session, ctx, ref)
    return Response(status_code=201)


@router.get("/{ref}/", responses=ERRORS)
async def retrieve_insight(request: Request, ref: str, session: SessionDep, ctx: ReadCtx) -> Response:
    """One insight by id or short_id, with dashboard context and results per the refresh mode."""
    return await _respond(request, views.retrieve_view(request, session, ctx, ref))


@router.patch("/{ref}/", responses=ERRORS)
async def patch_insight(request: Request, ref: str, session: SessionDep, ctx: WriteCtx) -> Response:
    """Update an insight; `deleted` soft-deletes or restores it."""
    body = await read_json_body(request)
    return _render(request, await views.update_view(request, session, ctx, ref, body), csv=False)


@router.put("/{ref}/", responses=ERRORS)
async def put_insight(request: Request, ref: str, session: SessionDep, ctx: WriteCtx) -> Response:
    """Same as PATCH; no field is required."""
    body = await read_json_body(request)
    return _render(request, await views.update_view(request, session, ctx, ref, body), csv=False)


# The 405 is documented with no body: it is sent empty (spec/API.md §3.9), unlike every other error.
@router.delete("/{ref}/", status_code=405, response_class=Response,
               responses={**ERRORS, 405: {"description": "Always: insights are soft-deleted with PATCH"}})
async def delete_insight(ref: str, ctx: WriteCtx) -> Response:
    """Always 405 with an empty body: insights are soft-deleted with PATCH `deleted: true`."""
    return Response(status_code=405)


@router.get("/{ref}/analyze/", responses=ERRORS)
async def analyze_insight(request: Request, ref: str, session: SessionDep, ctx: ReadCtx) -> dict:
    """A written analysis of the insight's result, with the structured facts it was made from."""
    from app.services.insight_analysis import analyze_insight as analyze

    insight = await views.get_readable_insight(session, ctx, ref, short_id=request.query_params.get("short_id"))
    return await analyze(session, insight=insight, environment=ctx.env, runner=views.make_runner(request, session, ctx),
                         settings=request.app.state.settings)


@router.get("/{ref}/suggestions/", responses=ERRORS)
@router.post("/{ref}/suggestions/", responses=ERRORS)
async def insight_suggestions(request: Request, ref: str, session: SessionDep, ctx: ReadCtx) -> list[dict]:
    """Follow-up insights worth looking at next; a POSTed `context` text may steer the ranking."""
    from pydantic import ValidationError

    from app.schemas.insight_analysis import SuggestionsBody
    from app.services.insight_suggestions import suggest

    body = await read_json_body(request) if request.method == "POST" else {}
    insight = await views.get_readable_insight(session, ctx, ref, short_id=request.query_params.get("short_id"))
    try:  # object lookup (404) before validation (400), as §1.5 orders them
        parsed = SuggestionsBody.model_validate(body if isinstance(body, dict) else {"context": body})
    except ValidationError as exc:
        too_long = exc.errors(include_url=False)[0].get("type") == "string_too_long"
        raise ValidationFailed("Ensure this field has no more than 10000 characters." if too_long else "Not a valid string.",
                               code="max_length" if too_long else "invalid_input", attr="context") from None
    return await suggest(session, insight=insight, environment=ctx.env, clickhouse=request.app.state.clickhouse,
                         settings=request.app.state.settings, context=parsed.context)


@router.get("/{ref}/activity/", responses=ERRORS)
async def insight_activity(request: Request, ref: str, session: SessionDep, ctx: ActivityCtx) -> dict:
    """Activity of one insight, newest first."""
    insight = await views.get_readable_insight(session, ctx, ref, short_id=request.query_params.get("short_id"))
    return await _activity_page(request, session, ctx, insight.id)


async def _activity_page(request: Request, session: SessionDep, ctx: Context, item_id: int | None) -> dict:
    results, total, page, limit = await activity_service.list_activity(
        session, environment_id=ctx.env.id, item_id=item_id, raw_limit=request.query_params.get("limit"),
        raw_page=request.query_params.get("page"))
    url = str(request.url)
    next_url = _page_url(url, page + 1, limit) if page * limit < total else None
    previous_url = _page_url(url, page - 1, limit) if page > 1 else None
    return {"results": results, "next": next_url, "previous": previous_url, "total_count": total}


def _page_url(url: str, page: int, limit: int) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for name, value in (("page", str(page)), ("limit", str(limit))):
        if any(k == name for k, _ in pairs):  # replaced where it is, otherwise appended
            pairs = [(k, value if k == name else v) for k, v in pairs]
        else:
            pairs.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(pairs)))

"""Elements API (spec/API.md §2): CRUD over stored elements, autocapture stats and values.

Element routes answer authentication failures with 401 + `WWW-Authenticate` (§1.3, Q3) and
accept JSON, form-encoded and multipart bodies (§1.1)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request, Response

from app.deps import ClickHouseDep, Context, SessionDep, SettingsDep, authorize, read_json_body
from app.errors import MethodNotAllowed, error_responses
from app.pagination import Page, replace_query_params
from app.schemas.common import Paginated
from app.schemas.elements import ElementRead, ElementStatsPage, ElementValue
from app.services import element_stats as stats_service
from app.services import elements as service

router = APIRouter(prefix="/api/environments/{environment_id}/elements", tags=["elements"])

ReadCtx = Annotated[Context, authorize("element:read", throttle="element", challenge=True)]
WriteCtx = Annotated[Context, authorize("element:write", throttle="element", challenge=True)]

_ERRORS = error_responses(400, 401, 403, 404, 429)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_INT_FIELDS = ("nth_child", "nth_of_type", "order")
_STATS_HEADERS = {"Cache-Control": "public, max-age=30", "Vary": "Accept, Accept-Encoding, Query-String"}


async def _body(request: Request) -> Any:
    """The request body as a dict-like value, whatever the supported content type."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in _FORM_TYPES:
        form = await request.form()
        data: dict[str, Any] = {}
        for key in form.keys():
            values = [v for v in form.getlist(key) if isinstance(v, str)]
            if not values:
                continue
            if key == "attr_class":
                data[key] = values
            elif key == "attributes":
                try:
                    data[key] = orjson.loads(values[-1])
                except orjson.JSONDecodeError:
                    data[key] = values[-1]  # reported as "not a dictionary"
            elif key in _INT_FIELDS and values[-1] == "":
                data[key] = None  # an empty form field means "no value"
            else:
                data[key] = values[-1]
        return data
    return await read_json_body(request)


def _read(element) -> ElementRead:
    return ElementRead.model_validate(element, from_attributes=True)


# The fixed-name routes come before `/{element_id}/`, which would otherwise capture them.
@router.get("/stats/", response_model=ElementStatsPage, responses=error_responses(400, 401, 403, 404, 429, 504))
async def element_stats(
    request: Request, session: SessionDep, clickhouse: ClickHouseDep, settings: SettingsDep, ctx: ReadCtx
) -> Response:
    """Counts of autocapture, rage-click and dead-click events per element chain, most frequent first."""
    params = stats_service.parse_params(request.query_params, ctx.env)
    results, has_more = await stats_service.element_stats(
        session, clickhouse, environment=ctx.env, params=params, settings=settings
    )
    url = str(request.url)
    next_url = replace_query_params(url, offset=params.offset + params.limit) if has_more else None
    # [Deviation] Q11: `offset=0` rather than PostHog's unchanged URL when offset == limit.
    previous_url = (replace_query_params(url, offset=params.offset - params.limit)
                    if params.offset - params.limit >= 0 else None)
    # Pre-rendered JSON: a 50,000-row page would otherwise be re-validated field by field.
    return Response(stats_service.render_page(results, next_url, previous_url), media_type="application/json",
                    headers=_STATS_HEADERS)


@router.get("/values/", response_model=list[ElementValue], responses=_ERRORS)
async def element_values(
    clickhouse: ClickHouseDep, settings: SettingsDep, ctx: ReadCtx, key: str | None = None, value: str | None = None
) -> list[dict]:
    """The 100 most frequent values of one element property over recent autocapture events."""
    return await service.element_values(clickhouse, environment_id=ctx.env.id, key=key, value=value or None,
                                        settings=settings)


# Like PostHog (DRF), a wrong method is refused only after authentication (§1.5): 401 first, then 405.
@router.api_route("/stats/", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
@router.api_route("/values/", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
@router.api_route("/", methods=["PUT", "PATCH", "DELETE"], include_in_schema=False)
@router.api_route("/{element_id}/", methods=["POST"], include_in_schema=False)
async def method_not_allowed(request: Request, ctx: ReadCtx) -> None:
    raise MethodNotAllowed(f'Method "{request.method}" not allowed.')


@router.get("/", response_model=Paginated[ElementRead], responses=_ERRORS)
async def list_elements(request: Request, session: SessionDep, ctx: ReadCtx) -> dict:
    """Elements created through this API in this environment, by id."""
    page = Page.from_request(request)
    count, rows = await service.list_elements(session, environment_id=ctx.env.id, limit=page.limit, offset=page.offset)
    return page.envelope(request, count, [_read(r) for r in rows])


@router.post("/", status_code=201, response_model=ElementRead, responses=_ERRORS)
async def create_element(request: Request, session: SessionDep, ctx: WriteCtx) -> ElementRead:
    """Store an element in this environment."""
    element = await service.create_element(session, environment_id=ctx.env.id, data=await _body(request))
    return _read(element)


@router.get("/{element_id}/", response_model=ElementRead, responses=_ERRORS)
async def get_element(element_id: str, session: SessionDep, ctx: ReadCtx) -> ElementRead:
    """One stored element of this environment."""
    return _read(await service.get_element(session, environment_id=ctx.env.id, element_id=element_id))


@router.patch("/{element_id}/", response_model=ElementRead, responses=_ERRORS)
async def update_element(element_id: str, request: Request, session: SessionDep, ctx: WriteCtx) -> ElementRead:
    """Change the fields sent; the others stay as they are."""
    element = await service.update_element(session, environment_id=ctx.env.id, element_id=element_id,
                                           data=await _body(request))
    return _read(element)


@router.put("/{element_id}/", response_model=ElementRead, responses=_ERRORS)
async def replace_element(element_id: str, request: Request, session: SessionDep, ctx: WriteCtx) -> ElementRead:
    """Same as PATCH, as in PostHog: no field is required and omitted fields stay."""
    element = await service.update_element(session, environment_id=ctx.env.id, element_id=element_id,
                                           data=await _body(request))
    return _read(element)


@router.delete("/{element_id}/", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_element(element_id: str, session: SessionDep, ctx: WriteCtx) -> Response:
    """Delete a stored element for good."""
    await service.delete_element(session, environment_id=ctx.env.id, element_id=element_id)
    return Response(status_code=204)

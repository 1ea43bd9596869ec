"""Abuse limits of the API (issue 9, item 4): body size, JSON nesting depth, query-schema limits
(breakdowns, series, formulas) and list pagination, each answered with the §1.6 envelope and never
with a 500. Capture's own limits (spec/INGESTION.md §7) are tested with ingestion; here only that the
API limits do not undercut them."""

from __future__ import annotations

import httpx
import orjson
import pytest

from app.main import create_app
from app.middleware import SECURITY_HEADERS, json_too_deep
from tests.conftest import TestEnv

TRENDS = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}]}
LEAF = '{"type":"event","key":"$browser","operator":"exact","value":"Chrome"}'


def viz(source: dict) -> dict:
    return {"kind": "InsightVizNode", "source": source}


def nested_object(levels: int) -> str:
    """JSON text of `levels` objects inside one another."""
    return '{"a":' * (levels - 1) + '{"a":1}' + "}" * (levels - 1)


def nested_groups(levels: int) -> str:
    """A property group nested `levels` deep (each level is an object and a `values` list)."""
    return '{"type":"AND","values":[' * levels + LEAF + "]}" * levels


def trends_with(extra: str) -> str:
    """A valid TrendsQuery with one more key whose value is the given JSON text."""
    return '{"kind":"TrendsQuery","series":[{"kind":"EventsNode","event":"$pageview"}],%s}' % extra


@pytest.fixture
async def rclient(app):
    """Unexpected exceptions become 500 answers instead of propagating, as in production."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="module")
async def tight_app(settings, backends):
    """Small limits, to reach them cheaply."""
    s = settings.model_copy(update={"api_max_body_bytes": 4096, "api_max_json_depth": 16, "list_max_limit": 2,
                                    "inprocess_worker": False})
    application = create_app(s, backends=backends)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def tclient(tight_app):
    transport = httpx.ASGITransport(app=tight_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def assert_envelope(r: httpx.Response, status: int, type_: str, code: str) -> dict:
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert set(body) == {"type", "code", "detail", "attr"}
    assert (body["type"], body["code"]) == (type_, code), body
    assert all(r.headers.get(k.decode()) == v.decode() for k, v in SECURITY_HEADERS)
    return body


async def create_insight(client: httpx.AsyncClient, env: TestEnv, query: dict | None = None) -> dict:
    r = await client.post(f"/api/environments/{env.id}/insights/", headers=env.headers,
                          json={"name": "limits", "query": query or viz(TRENDS)})
    assert r.status_code == 201, r.text
    return r.json()


class TestBodySize:
    """`api_max_body_bytes` (APP_API_MAX_BODY_BYTES, default 1 MiB) on every `/api/` route → 413."""

    async def test_default_is_one_mebibyte(self, app, rclient, env: TestEnv):
        assert app.state.settings.api_max_body_bytes == 1024 * 1024
        api = f"/api/environments/{env.id}"
        big = {**TRENDS, "tags": {"pad": "x" * (1024 * 1024)}}  # a presentation key carrying 1 MiB
        insight = await create_insight(rclient, env)
        for method, path, body in [
            ("POST", f"{api}/query/", {"query": big}),
            ("POST", f"{api}/insights/", {"query": viz(big)}),
            ("PATCH", f"{api}/insights/{insight['id']}/", {"query": viz(big)}),
            ("POST", f"{api}/elements/", {"text": "x" * (1024 * 1024)}),
        ]:
            r = await rclient.request(method, path, headers=env.headers, json=body)
            detail = assert_envelope(r, 413, "invalid_request", "request_too_large")["detail"]
            assert "1048576" in detail
        # Just under the limit is fine.
        r = await rclient.post(f"{api}/query/", headers=env.headers,
                               json={"query": {**TRENDS, "tags": {"pad": "x" * 1_000_000}}})
        assert r.status_code == 200, r.text[:300]

    async def test_streamed_body_without_length(self, tclient, env: TestEnv):
        async def chunks():
            for _ in range(10):
                yield b" " * 1000

        r = await tclient.post(f"/api/environments/{env.id}/query/", content=chunks(),
                               headers={**env.headers, "Content-Type": "application/json"})
        assert_envelope(r, 413, "invalid_request", "request_too_large")

    async def test_capture_keeps_its_own_larger_limits(self, rclient, env: TestEnv):
        """/batch/ takes 20 MB and /s 25 MB (INGESTION §7): the API limit and the middleware's
        ceiling (max_body_bytes, 20 MB) must not cut them short."""
        events = [{"event": "limits_big_batch", "distinct_id": f"u{i}", "properties": {"pad": "x" * 2000}}
                  for i in range(1000)]  # ≈ 2 MB, twice the API limit
        r = await rclient.post("/batch/", json={"api_key": env.creds.project_api_key, "batch": events})
        assert r.status_code == 200, r.text[:300]
        r = await rclient.post("/s/", content=b"x" * (21 * 1024 * 1024))
        assert r.status_code == 200, r.text[:300]
        r = await rclient.post("/s/", content=b"x" * (25 * 1024 * 1024 + 1))
        assert r.status_code == 413


class TestJsonDepth:
    """`api_max_json_depth` (APP_API_MAX_JSON_DEPTH, default 64) → 400 parse_error, before anything
    recursive (validation, the query engine, storing the JSON) sees the body."""

    @pytest.mark.parametrize("levels", [65, 500, 5000])
    async def test_too_deep_anywhere_is_400(self, rclient, env: TestEnv, levels):
        api = f"/api/environments/{env.id}"
        insight = await create_insight(rclient, env)
        deep = nested_object(levels)
        for method, path, body in [
            ("POST", f"{api}/query/", '{"query":%s}' % trends_with('"extra":' + deep)),
            ("POST", f"{api}/query/", '{"query":%s}' % trends_with('"properties":' + nested_groups(levels))),
            ("POST", f"{api}/insights/", '{"query":{"kind":"InsightVizNode","source":%s}}' % trends_with('"x":' + deep)),
            ("PATCH", f"{api}/insights/{insight['id']}/", '{"name":"n","query":%s}' % deep),
            ("POST", f"{api}/elements/", '{"text":"a","attributes":%s}' % deep),
            ("PATCH", f"{api}/", '{"test_account_filters":[%s]}' % deep),
            ("POST", "/api/environments/", '{"name":%s}' % deep),
        ]:
            r = await rclient.request(method, path, headers={**env.headers, "Content-Type": "application/json"},
                                      content=body.encode())
            detail = assert_envelope(r, 400, "invalid_request", "parse_error")["detail"]
            assert "deeper than 64 levels" in detail

    async def test_deep_body_is_refused_before_authentication(self, rclient, env: TestEnv):
        r = await rclient.post(f"/api/environments/{env.id}/query/", content=nested_object(100).encode(),
                               headers={"Content-Type": "application/json"})
        assert_envelope(r, 400, "invalid_request", "parse_error")

    async def test_deepest_allowed_queries_never_500(self, rclient, env: TestEnv):
        """Right at the limit: the query engine, validation and PostgreSQL's JSON all cope."""
        api = f"/api/environments/{env.id}"
        # 64 levels in total: the body, `query`, `source` and the property groups' object + list pairs.
        groups = nested_groups(29)
        extra = nested_object(61)
        for route, body in [
            ("query/", '{"query":%s}' % trends_with('"properties":' + groups)),
            ("query/", '{"query":%s}' % trends_with('"extra":' + extra)),
            ("insights/", '{"query":{"kind":"InsightVizNode","source":%s}}' % trends_with('"properties":' + groups)),
            ("insights/", '{"query":{"kind":"InsightVizNode","source":%s}}' % trends_with('"extra":' + nested_object(60))),
        ]:
            assert not json_too_deep(body.encode(), 64)
            r = await rclient.post(f"{api}/{route}", headers={**env.headers, "Content-Type": "application/json"},
                                   content=body.encode())
            assert r.status_code < 500, (route, r.text[:300])
            assert r.status_code in (200, 201, 400), r.text[:300]

    async def test_setting_changes_the_limit(self, tclient, env: TestEnv):
        api = f"/api/environments/{env.id}"
        ok = '{"query":%s}' % trends_with('"extra":' + nested_object(14))  # 16 levels with body and query
        r = await tclient.post(f"{api}/query/", headers={**env.headers, "Content-Type": "application/json"},
                               content=ok.encode())
        assert r.status_code == 200, r.text[:300]
        deep = '{"query":%s}' % trends_with('"extra":' + nested_object(15))
        r = await tclient.post(f"{api}/query/", headers={**env.headers, "Content-Type": "application/json"},
                               content=deep.encode())
        assert "deeper than 16 levels" in assert_envelope(r, 400, "invalid_request", "parse_error")["detail"]

    def test_depth_scanner(self):
        assert not json_too_deep(b'{"a":[1,2,{"b":[]}]}', 4)
        assert json_too_deep(b'{"a":[1,2,{"b":[]}]}', 3)
        # Brackets inside strings (escaped quotes included) do not count.
        text = orjson.dumps({"s": "[" * 500 + '\\"{{{' + "{" * 500, "t": ["]]]"]})
        assert not json_too_deep(text, 2)
        assert json_too_deep(b"[" * 65 + b"]" * 65, 64)
        assert not json_too_deep(b"[" * 64 + b"]" * 64, 64)
        assert not json_too_deep(b"[]" * 100_000, 1)  # wide, not deep
        assert json_too_deep(b"[{" * 32 + b"[]" + b"}]" * 32, 64)  # objects and arrays count alike
        assert not json_too_deep(b"[" * 100, 64)  # malformed (unbalanced): the parser's business

    def test_depth_scanner_is_linear(self):
        """Unterminated strings full of escaped quotes once made the string pattern retry at every
        quote (quadratic: tens of seconds per request)."""
        import time

        for raw in (b"[" * 70 + b'"' + b'\\"' * 400_000, b'"a" ' * 250_000 + b"[" * 70 + b"]" * 70,
                    b"[]" * 500_000, orjson.dumps([{"a": "x[{" * 10, "b": [1, {"c": "d"}]}] * 20_000)):
            started = time.perf_counter()
            json_too_deep(raw, 64)
            assert time.perf_counter() - started < 1.0, raw[:80]


class TestQuerySchemaLimits:
    """The query schema's own bounds (app/schemas/query): 400 validation_error naming the field."""

    CASES = {
        "breakdown_limit": {**TRENDS, "breakdownFilter": {"breakdown": "$browser", "breakdown_limit": 10_001}},
        "breakdowns": {**TRENDS, "breakdownFilter": {"breakdowns": [{"property": f"p{i}"} for i in range(4)]}},
        "series": {**TRENDS, "series": [{"kind": "EventsNode", "event": f"e{i}"} for i in range(51)]},
        "formula": {**TRENDS, "trendsFilter": {"formula": "A+" * 500 + "A"}},
        "histogram": {**TRENDS, "breakdownFilter": {"breakdown": "amount", "breakdown_histogram_bin_count": 1001}},
        "formulaNodes": {**TRENDS, "trendsFilter": {"formulaNodes": [{"formula": "A"}] * 51}},
        "formulas": {**TRENDS, "trendsFilter": {"formulas": ["A"] * 51}},
        "formulas_item": {**TRENDS, "trendsFilter": {"formulas": ["A+" * 500 + "A"]}},
        "properties": {**TRENDS, "properties": [{"key": f"p{i}", "value": "x", "type": "event"} for i in range(201)]},
        "properties_group": {**TRENDS, "properties": {"type": "AND", "values": [
            {"type": "OR", "values": [{"key": f"p{i}", "value": "x", "type": "event"} for i in range(201)]}]}},
        "properties_series": {**TRENDS, "series": [{"kind": "EventsNode", "event": "e", "properties": [
            {"key": f"p{i}", "value": "x", "type": "event"} for i in range(201)]}]},
    }

    @pytest.mark.parametrize("name", sorted(CASES))
    async def test_over_the_limit_is_400(self, rclient, env: TestEnv, name):
        api = f"/api/environments/{env.id}"
        query = self.CASES[name]
        r = await rclient.post(f"{api}/query/", headers=env.headers, json={"query": query})
        body = assert_envelope(r, 400, "validation_error", "invalid_input")
        assert name.split("_")[0] in (body["attr"] or "") + body["detail"], body
        # Insights report an invalid `query` as a parse error of that field (app/schemas/insights.py).
        r = await rclient.post(f"{api}/insights/", headers=env.headers, json={"query": viz(query)})
        assert r.status_code == 400, r.text[:300]
        assert name.split("_")[0] in r.json()["detail"]

    async def test_at_the_limit_is_accepted(self, rclient, env: TestEnv):
        api = f"/api/environments/{env.id}"
        for query in [
            {**TRENDS, "breakdownFilter": {"breakdown": "$browser", "breakdown_limit": 10_000}},
            {**TRENDS, "breakdownFilter": {"breakdowns": [{"property": f"p{i}"} for i in range(3)]}},
            {**TRENDS, "series": [{"kind": "EventsNode", "event": f"e{i}"} for i in range(50)]},
            {**TRENDS, "properties": [{"key": f"p{i}", "value": "x", "type": "event"} for i in range(200)]},
            {**TRENDS, "trendsFilter": {"formulas": ["A"] * 50}},
        ]:
            r = await rclient.post(f"{api}/query/", headers=env.headers, json={"query": query})
            assert r.status_code == 200, r.text[:300]


class TestPagination:
    async def test_plain_lists_have_no_cap_by_default(self, client, env: TestEnv):
        """spec/API.md §1.7: no maximum, so a big `limit` is echoed in the links unchanged."""
        for path in ("insights/", "elements/", "dashboards/"):
            r = await client.get(f"/api/environments/{env.id}/{path}?limit=100000&offset=1", headers=env.headers)
            assert r.status_code == 200, r.text
            assert "limit=100000" in r.json()["previous"]

    async def test_list_max_limit_clamps_silently(self, tclient, env: TestEnv):
        """APP_LIST_MAX_LIMIT (here 2): a bigger `limit` is clamped, never a 400."""
        api = f"/api/environments/{env.id}"
        for _ in range(3):
            await create_insight(tclient, env)
        r = await tclient.get(f"{api}/insights/?limit=1000", headers=env.headers)
        assert r.status_code == 200
        body = r.json()
        assert (body["count"], len(body["results"])) == (3, 2)
        assert "limit=2" in body["next"] and "offset=2" in body["next"]
        for path in ("elements/", "dashboards/", "property_definitions/", "event_definitions/"):
            r = await tclient.get(f"{api}/{path}?limit=1000", headers=env.headers)
            assert r.status_code == 200, (path, r.text[:200])
        r = await tclient.get("/api/environments/?limit=1000", headers=env.headers)
        assert r.status_code == 200

    async def test_documented_maxima(self, rclient, env: TestEnv):
        """elements/stats `limit` is 1…999 999 (§2.8); activity `limit`/`page` must be ≥ 1 (§3.10)."""
        api = f"/api/environments/{env.id}"
        r = await rclient.get(f"{api}/elements/stats/?limit=1000000", headers=env.headers)
        assert "between 1 and 999999" in assert_envelope(r, 400, "validation_error", "invalid_input")["detail"]
        r = await rclient.get(f"{api}/elements/stats/?limit=999999", headers=env.headers)
        assert r.status_code == 200
        r = await rclient.get(f"{api}/insights/activity/?limit=0", headers=env.headers)
        assert_envelope(r, 400, "validation_error", "invalid_input")

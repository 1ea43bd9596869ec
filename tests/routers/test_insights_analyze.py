"""`GET insights/{id}/analyze/` (spec/API.md §3.11) end to end: real events in ClickHouse, the shared
result cache, auth, and the optional language model behind a local fake OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import update

from app import clock
from app.models import Environment, Organization
from app.schemas.query import ChartDisplayType
from tests.conftest import TestEnv
from tests.routers.insight_helpers import create_insight
from tests.query_engine.helpers import insert_events

T0 = "2020-01-12T12:00:00Z"  # 12 January is the current, incomplete day


def trends(**extra) -> dict:
    source = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}],
              "dateRange": {"date_from": "2020-01-08", "date_to": "2020-01-12"}, **extra}
    return {"kind": "InsightVizNode", "source": source}


def pageviews(day: str, n: int, **props) -> list[dict]:
    return [{"event": "$pageview", "distinct_id": f"u{i}", "timestamp": f"2020-01-{day}T10:00:00Z",
             "properties": props} for i in range(n)]


@pytest.fixture
async def data(backends, env):
    clock.freeze(T0)
    events = (pageviews("08", 2, **{"$browser": "Chrome"}) + pageviews("08", 2, **{"$browser": "Safari"})
              + pageviews("09", 3, **{"$browser": "Chrome"}) + pageviews("09", 2, **{"$browser": "Safari"})
              + pageviews("10", 5, **{"$browser": "Chrome"}) + pageviews("10", 2, **{"$browser": "Safari"})
              + pageviews("11", 8, **{"$browser": "Chrome"}) + pageviews("11", 1, **{"$browser": "Safari"})
              + pageviews("12", 1, **{"$browser": "Chrome"})
              # the previous period for compare: 3 … 7 January
              + pageviews("05", 2) + pageviews("06", 2) + pageviews("07", 2) + pageviews("04", 2) + pageviews("03", 2))
    await insert_events(backends.clickhouse, env.id, events)
    yield
    clock.freeze(None)


async def make(client, env: TestEnv, query) -> dict:
    return await create_insight(client, env, query)


async def analyze(client, env: TestEnv, insight: dict, headers=None, status: int = 200) -> dict:
    r = await client.get(f"/api/environments/{env.id}/insights/{insight['id']}/analyze/", headers=headers or env.headers)
    assert r.status_code == status, r.text
    return r.json()


class TestAnalyze:
    async def test_trend_with_incomplete_current_day(self, client, env, data):
        body = await analyze(client, env, await make(client, env, trends()))
        [s] = body["analysis"]["series"]
        assert (s["first"]["value"], s["last"]["value"], s["change"], s["change_pct"]) == (4, 9, 5, 1.25)
        assert s["incomplete"] == {"day": "2020-01-12", "label": "12-Jan-2020", "value": 1}
        assert s["peak"]["day"] == "2020-01-11" and s["trough"]["day"] == "2020-01-08"
        lines = body["result"].splitlines()
        assert lines[0] == ("$pageview rose 125% from 4 on 8-Jan-2020 to 9 on 11-Jan-2020. 12-Jan-2020 is still in "
                            "progress (1 so far) and is not counted as a change.")
        assert "- Peak: 9 on 11-Jan-2020; lowest: 4 on 8-Jan-2020." in lines
        assert body["analysis"]["text_source"] == "deterministic"

    async def test_uncomputed_insight_is_computed_through_the_cache(self, client, env, data):
        insight = await make(client, env, trends())
        r = await client.get(f"/api/environments/{env.id}/insights/{insight['id']}/", headers=env.headers)
        assert r.json()["result"] is None  # nothing computed yet
        await analyze(client, env, insight)
        r = await client.get(f"/api/environments/{env.id}/insights/{insight['id']}/", headers=env.headers)
        assert r.json()["is_cached"] is True and r.json()["result"][0]["data"] == [4, 5, 7, 9, 1]

    async def test_breakdown_contributors(self, client, env, data):
        query = trends(breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"})
        s = (await analyze(client, env, await make(client, env, query)))["analysis"]["series"][0]
        assert [(c["label"], c["change"]) for c in s["contributors"]] == [("Chrome", 6), ("Safari", -1)]
        assert s["breakdown_rows"] == 2

    async def test_compare_delta(self, client, env, data):
        query = trends(compareFilter={"compare": True})
        body = await analyze(client, env, await make(client, env, query))
        [s] = body["analysis"]["series"]
        # current 8–11 January (12th excluded: incomplete) vs the same four days of the previous period
        assert s["compare"] == {"current": 25, "previous": 8, "change": 17, "change_pct": 2.125, "periods": 4,
                              "basis": "sum"}
        assert "- Compared with the previous period: 25 vs 8 (+212.5%)." in body["result"].splitlines()

    async def test_total_value_display(self, client, env, data):
        query = trends(trendsFilter={"display": "BoldNumber"})
        body = await analyze(client, env, await make(client, env, query))
        assert body["analysis"]["series"][0]["total"] == 26 and body["result"].startswith("$pageview: 26.")

    @pytest.mark.parametrize("display", [d.value for d in ChartDisplayType])
    async def test_every_display_with_breakdown_compare_and_formula(self, client, env, data, display):
        query = trends(trendsFilter={"display": display}, compareFilter={"compare": True},
                       breakdownFilter={"breakdown_type": "event", "breakdown": "$browser"})
        query["source"]["series"].append({"kind": "EventsNode", "event": "$pageview", "math": "dau"})
        body = await analyze(client, env, await make(client, env, query))
        assert body["result"] and len(body["analysis"]["series"]) == 2
        assert body["analysis"]["series"][0]["compare"] is not None
        query["source"]["trendsFilter"]["formulaNodes"] = [{"formula": "A - B"}]
        body = await analyze(client, env, await make(client, env, query))
        assert body["analysis"]["series"][0]["name"] == "Formula (A - B)"

    async def test_not_an_insight_viz_node(self, client, env, data):
        table = {"kind": "DataTableNode", "source": {"kind": "EventsQuery", "select": ["*"]}}
        assert await analyze(client, env, await make(client, env, table)) == {"result": ""}
        r = await client.post(f"/api/environments/{env.id}/insights/", json={"name": "no query"}, headers=env.headers)
        assert await analyze(client, env, r.json()) == {"result": ""}

    async def test_other_kinds_are_not_analysed_yet(self, client, env, data):
        funnel = {"kind": "InsightVizNode", "source": {"kind": "FunnelsQuery", "series": [
            {"kind": "EventsNode", "event": "a"}, {"kind": "EventsNode", "event": "b"}]}}
        body = await analyze(client, env, await make(client, env, funnel))
        assert body["result"] == "Funnel insights are not analysed yet: only trends insights have an analysis so far."
        assert body["analysis"]["supported"] is False and body["analysis"]["series"] == []


class TestAnalyzeAccess:
    async def test_no_credentials(self, client, env, data):
        insight = await make(client, env, trends())
        r = await client.get(f"/api/environments/{env.id}/insights/{insight['id']}/analyze/")
        assert r.status_code == 403 and r.json()["code"] == "not_authenticated"

    async def test_scopes(self, client, env, data):
        insight = await make(client, env, trends())
        wrong = await env.make_key(["dashboard:read"])
        body = await analyze(client, env, insight, headers={"Authorization": f"Bearer {wrong}"}, status=403)
        assert body["detail"] == "API key missing required scope 'insight:read'"
        for scopes in (["insight:read"], ["insight:write"], ["*"]):
            key = await env.make_key(scopes)
            await analyze(client, env, insight, headers={"Authorization": f"Bearer {key}"})

    async def test_other_environment_and_deleted_are_404(self, client, env, other_env, data):
        insight = await make(client, env, trends())
        r = await client.get(f"/api/environments/{other_env.id}/insights/{insight['id']}/analyze/",
                             headers=other_env.headers)
        assert r.status_code == 404
        await client.patch(f"/api/environments/{env.id}/insights/{insight['id']}/", json={"deleted": True},
                           headers=env.headers)
        await analyze(client, env, insight, status=404)
        await analyze(client, env, {"id": insight["short_id"]}, status=404)


# -- the optional language model ------------------------------------------------------------------------
class FakeModel:
    """A local stand-in for a third-party OpenAI-compatible API."""

    def __init__(self, reply: str, delay: float = 0.0) -> None:
        self.reply, self.delay, self.requests = reply, delay, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                fake.requests.append((self.path, self.headers.get("Authorization"),
                                      json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                time.sleep(fake.delay)
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": fake.reply}}]}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def model(app, monkeypatch):
    servers = []

    def start(reply: str = "Pageviews more than doubled over the complete days.", *, delay: float = 0.0,
              timeout: float = 10.0) -> FakeModel:
        fake = FakeModel(reply, delay)
        servers.append(fake)
        settings = app.state.settings
        monkeypatch.setattr(settings, "llm_base_url", fake.url)
        monkeypatch.setattr(settings, "llm_model", "test-model")
        monkeypatch.setattr(settings, "llm_api_key", type(settings.llm_api_key)("sk-test"))
        monkeypatch.setattr(settings, "llm_timeout_seconds", timeout)
        return fake

    yield start
    for fake in servers:
        fake.close()


async def approve(backends, env: TestEnv, approved: bool = True) -> None:
    async with backends.sessionmaker() as session:
        org_id = (await session.get(Environment, env.id)).organization_id
        await session.execute(update(Organization).where(Organization.id == org_id)
                              .values(is_ai_data_processing_approved=approved))
        await session.commit()


class TestLanguageModel:
    async def test_used_when_approved(self, client, env, backends, data, model):
        fake = model()
        await approve(backends, env)
        body = await analyze(client, env, await make(client, env, trends()))
        assert body["result"] == "Pageviews more than doubled over the complete days."
        assert body["analysis"]["text_source"] == "llm"
        assert body["analysis"]["series"][0]["last"]["value"] == 9  # the facts stay ours
        [(path, auth, request)] = fake.requests
        assert path == "/v1/chat/completions" and auth == "Bearer sk-test" and request["model"] == "test-model"
        user = json.loads(request["messages"][1]["content"])
        assert user["facts"]["series"][0]["change"] == 5 and user["draft"].startswith("$pageview rose 125%")

    async def test_not_used_without_approval(self, client, env, backends, data, model):
        fake = model()
        body = await analyze(client, env, await make(client, env, trends()))
        assert body["analysis"]["text_source"] == "deterministic" and fake.requests == []
        assert body["result"].startswith("$pageview rose 125%")

    async def test_timeout_falls_back(self, client, env, backends, data, model):
        fake = model(delay=1.5, timeout=0.3)
        await approve(backends, env)
        started = time.monotonic()
        body = await analyze(client, env, await make(client, env, trends()))
        assert time.monotonic() - started < 1.4
        assert body["analysis"]["text_source"] == "deterministic" and body["result"].startswith("$pageview rose 125%")
        assert len(fake.requests) == 1

    async def test_invented_numbers_fall_back(self, client, env, backends, data, model):
        model("Pageviews grew 400% to 37 visits.")
        await approve(backends, env)
        body = await analyze(client, env, await make(client, env, trends()))
        assert body["analysis"]["text_source"] == "deterministic"

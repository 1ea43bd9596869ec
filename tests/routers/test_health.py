from __future__ import annotations

import re


class TestHealth:
    async def test_liveness(self, client):
        for path in ("/_health", "/_health/", "/"):  # INGESTION.md §1: "`/_health` or `/`"
            r = await client.get(path)
            assert r.status_code == 200 and r.json() == {"status": "ok"}

    async def test_readiness_all_ok(self, client):
        r = await client.get("/_readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"postgres": "ok", "clickhouse": "ok", "redis": "ok"}


class TestOpenAPI:
    async def test_bearer_scheme_and_docs(self, client):
        schema = (await client.get("/openapi.json")).json()
        assert schema["components"]["securitySchemes"]["PersonalAPIKey"]["scheme"] == "bearer"
        op = schema["paths"]["/api/environments/{environment_id}/"]["get"]
        assert op["security"] == [{"PersonalAPIKey": []}]
        assert "EnvironmentRead" in schema["components"]["schemas"]
        r = await client.get("/docs")
        assert r.status_code == 200 and "swagger" in r.text.lower()

    async def test_every_path_parameter_is_declared(self, client):
        # Found by schemathesis: `environment_id` (read by `authorize`, not the endpoint) was missing from
        # every operation, and FastAPI's 422 was documented though the API answers validation with 400.
        schema = (await client.get("/openapi.json")).json()
        for path, methods in schema["paths"].items():
            names = set(re.findall(r"{(\w+)}", path))
            for method, op in methods.items():
                declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
                assert names == declared, (method, path)
                assert "422" not in op["responses"], (method, path)
        delete = schema["paths"]["/api/environments/{environment_id}/insights/{ref}/"]["delete"]["responses"]
        assert "content" not in delete["405"]  # sent with an empty body
        assert "400" in schema["paths"]["/e/"]["post"]["responses"]

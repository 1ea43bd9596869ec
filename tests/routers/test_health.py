from __future__ import annotations


class TestHealth:
    async def test_liveness(self, client):
        r = await client.get("/_health")
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

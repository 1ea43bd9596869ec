from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.schemas.health import Health, Readiness

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 3.0


@router.get("/_health", response_model=Health)
@router.get("/_health/", response_model=Health, include_in_schema=False)  # INGESTION.md §1: both slash variants
@router.get("/", response_model=Health, include_in_schema=False)  # INGESTION.md §1: "`/_health` or `/`"
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


async def _check_postgres(request: Request) -> None:
    async with request.app.state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_clickhouse(request: Request) -> None:
    if not await request.app.state.clickhouse.ping():
        raise RuntimeError("ping failed")


async def _check_redis(request: Request) -> None:
    await request.app.state.redis.ping()


@router.get("/_readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readiness(request: Request) -> JSONResponse:
    """Readiness: PostgreSQL, ClickHouse and Redis all answer; 503 names the one that does not."""
    checks = {"postgres": _check_postgres, "clickhouse": _check_clickhouse, "redis": _check_redis}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(request), CHECK_TIMEOUT)
            results[name] = "ok"
        except Exception as exc:  # a failed check is the answer, not an error
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    failed = [name for name, value in results.items() if value != "ok"]
    status = "ok" if not failed else "unavailable: " + ", ".join(failed)
    return JSONResponse(Readiness(status=status, checks=results).model_dump(), status_code=503 if failed else 200)

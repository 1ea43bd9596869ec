"""Test session: the real embedded backends (PostgreSQL, chDB, Redis) are started once; each test
gets its own organization, environment, user and key, so tests never share rows."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.backends import Backends
from app.main import create_app
from app.services.bootstrap import Credentials, bootstrap, create_personal_api_key, create_user
from app.settings import Settings

pytest_plugins = ["tests.clickhouse_fixtures"]

# Tests against external servers run only when they are named.
collect_ignore = [] if os.environ.get("APP_TEST_CLICKHOUSE_URL") else ["live"]


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"tally-test-{_worker()}-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    return Settings(
        env="test",
        data_dir=data_dir,
        database_url=os.environ.get("APP_TEST_DATABASE_URL"),
        clickhouse_url=os.environ.get("APP_TEST_CLICKHOUSE_URL"),
        redis_url=os.environ.get("APP_TEST_REDIS_URL"),
        clickhouse_database=f"tally_test_{_worker()}",
        rate_limits="off",
        log_json=False,
    )


@pytest.fixture(scope="session")
async def backends(settings: Settings) -> AsyncIterator[Backends]:
    opened = await Backends.open(settings)
    yield opened
    await opened.close()


@pytest.fixture(scope="session")
async def ch_executor(backends: Backends):
    """The session's one ClickHouse executor (chDB allows one data path per process)."""
    return backends.clickhouse


@pytest.fixture(scope="session")
async def app(settings: Settings, backends: Backends):
    application = create_app(settings, backends=backends)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class TestEnv:
    __test__ = False  # a fixture value, not a test class

    creds: Credentials
    backends: Backends

    @property
    def id(self) -> int:
        return self.creds.environment_id

    @property
    def key(self) -> str:
        return self.creds.personal_api_key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def make_key(self, scopes: list[str] | None, *, scoped_teams: list[int] | None = None,
                       scoped_organizations: list[int] | None = None, other_user: bool = False) -> str:
        """A key of this environment's user (or a new member of the same organization)."""
        from sqlalchemy import select

        from app.models import Environment, Organization, User

        async with self.backends.sessionmaker() as session:
            env = await session.get(Environment, self.id)
            if other_user:
                org = await session.get(Organization, env.organization_id)
                user = await create_user(session, organization=org)
            else:
                user = await session.scalar(select(User).where(User.email == self.creds.user_email))
            key = await create_personal_api_key(session, user=user, scopes=scopes, scoped_teams=scoped_teams,
                                                scoped_organizations=scoped_organizations)
            await session.commit()
        return key


async def new_env(backends: Backends, **kwargs) -> TestEnv:
    async with backends.sessionmaker() as session:
        creds = await bootstrap(session, **kwargs)
        await session.commit()
    return TestEnv(creds=creds, backends=backends)


@pytest.fixture
async def env(backends: Backends) -> TestEnv:
    return await new_env(backends)


@pytest.fixture
async def other_env(backends: Backends) -> TestEnv:
    """An environment of another organization."""
    return await new_env(backends, organization_name="Other org")

"""Command line: `python -m app {serve,worker,migrate,bootstrap,demo-data}`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from app.settings import Settings, describe_settings_error


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic ValidationError and friends: one clear line, no traceback
        print(describe_settings_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _graceful_server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """SIGTERM/SIGINT shut down gracefully (lifespan stops the embedded servers) and the process
        then exits 0; uvicorn would re-raise the signal and exit with -15 instead."""

        def handle_exit(self, sig, frame) -> None:  # type: ignore[no-untyped-def]
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return GracefulServer


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.embedded import EmbeddedStartError, claim_data_dir, ensure_data_dir
    from app.logs import configure_logging
    from app.main import create_app

    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        ensure_data_dir(settings.data_path)
        owner_lock = claim_data_dir(settings.data_path) if settings.embedded_clickhouse else None  # noqa: F841
    except EmbeddedStartError as exc:
        _fail(str(exc))
    app = create_app(settings, first_start=True)
    _GracefulServer = _graceful_server_class()
    # No uvicorn access log (ours, in RequestContextMiddleware, logs the path without the query
    # string, where a `personal_api_key` may sit) and no `Server: uvicorn` header.
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_config=None, lifespan="on", access_log=False,
        server_header=False, timeout_graceful_shutdown=10,
    )
    server = _GracefulServer(config)
    try:
        server.run()
    except EmbeddedStartError as exc:
        _fail(str(exc))
    if not server.started:
        raise SystemExit(3)


def cmd_worker(args: argparse.Namespace) -> None:
    from arq.worker import run_worker

    from app.backends import arq_settings
    from app.embedded import EmbeddedRedis
    from app.jobs.worker import WorkerSettings
    from app.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.embedded_clickhouse:
        _fail(
            "a separate worker needs APP_CLICKHOUSE_URL: with embedded ClickHouse (chDB) the API process "
            "runs the worker itself"
        )
    redis_url = settings.redis_url or EmbeddedRedis(settings.data_path).start()
    run_worker(WorkerSettings, redis_settings=arq_settings(redis_url))  # type: ignore[arg-type]


def cmd_migrate(args: argparse.Namespace) -> None:
    from app.backends import Backends
    from app.embedded import EmbeddedStartError, claim_data_dir, ensure_data_dir

    settings = _settings()
    try:
        if settings.embedded_clickhouse:
            owner_lock = claim_data_dir(ensure_data_dir(settings.data_path))  # noqa: F841
    except EmbeddedStartError as exc:
        _fail(str(exc))

    async def run() -> None:
        backends = await Backends.open(settings, run_migrations=True)
        await backends.close()

    asyncio.run(run())
    print("migrations applied (PostgreSQL and ClickHouse)")


@contextmanager
def _metadata_database(settings: Settings) -> Iterator[str]:
    """The migrated metadata database's URL: `APP_DATABASE_URL`, or the embedded PostgreSQL
    (adopted when `serve` runs on the same data dir, and stopped afterwards only if we started it)."""
    from app import migrate
    from app.embedded import EmbeddedPostgres, EmbeddedStartError, ensure_data_dir

    embedded: EmbeddedPostgres | None = None
    try:
        url = settings.database_url
        if url is None:
            ensure_data_dir(settings.data_path)
            embedded = EmbeddedPostgres(settings.data_path)
            url = embedded.start()
        migrate.upgrade_sync(url)
        yield url
    except EmbeddedStartError as exc:
        _fail(str(exc))
    finally:
        if embedded is not None:
            embedded.stop()  # stops the server only if no other process (serve) holds it


def cmd_bootstrap(args: argparse.Namespace) -> None:
    """Only PostgreSQL is touched, so this works while `serve` owns chDB and Redis."""
    from app.db import create_engine, create_sessionmaker
    from app.services.bootstrap import bootstrap

    settings = _settings()

    async def run(url: str) -> dict[str, object]:
        engine = create_engine(url, pool_size=1)
        try:
            async with create_sessionmaker(engine)() as session:
                creds = await bootstrap(
                    session, organization_name=args.organization, environment_name=args.environment,
                    email=args.email, scopes=args.scopes,
                )
                await session.commit()
            return creds.as_dict()
        finally:
            await engine.dispose()

    with _metadata_database(settings) as url:
        result = asyncio.run(run(url))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


def cmd_demo_data(args: argparse.Namespace) -> None:
    """Writes straight through the executor. With embedded chDB the data dir belongs to one
    process: while `serve` runs on it, chDB refuses to open and we say so."""
    from app.clickhouse.migrations import migrate_clickhouse
    from app.db import create_engine, create_sessionmaker
    from app.demo import generate_demo_data
    from app.query_engine.executor import create_executor

    settings = _settings()

    async def run(url: str) -> int:
        executor = create_executor(settings)
        engine = create_engine(url, pool_size=2)
        try:
            try:
                await migrate_clickhouse(executor, database=settings.clickhouse_database,
                                         cluster=settings.clickhouse_cluster)
                await executor.recover()
            except Exception as exc:
                if settings.embedded_clickhouse:
                    _fail(
                        f"cannot open the embedded ClickHouse under {settings.data_path}: is `serve` running on this"
                        " data dir? chDB's data dir belongs to one process; stop the server and run demo-data again"
                        f" (or point APP_CLICKHOUSE_URL at a ClickHouse server). Cause: {str(exc)[:200]}"
                    )
                raise
            sessionmaker = create_sessionmaker(engine)
            env_id = args.environment
            if env_id is None:
                from sqlalchemy import func, select

                from app.models import Environment

                async with sessionmaker() as session:
                    env_id = await session.scalar(select(func.min(Environment.id)))
                if env_id is None:
                    _fail("no environment exists yet: run `python -m app bootstrap` (or `serve` once) first")
            return await generate_demo_data(executor, sessionmaker, environment_id=env_id, events=args.events,
                                            days=args.days, seed=args.seed, progress=True)
        finally:
            await executor.close()
            await engine.dispose()

    with _metadata_database(settings) as url:
        written = asyncio.run(run(url))
    print(f"wrote {written:,} demo events")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Tally: PostHog-compatible analytics API")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (embedded backends unless APP_*_URL are set)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run an arq worker for background refreshes (needs APP_CLICKHOUSE_URL)")
    worker.set_defaults(func=cmd_worker)

    mig = sub.add_parser("migrate", help="apply PostgreSQL and ClickHouse migrations and exit")
    mig.set_defaults(func=cmd_migrate)

    boot = sub.add_parser("bootstrap", help="create an organization, environment, user and personal API key")
    boot.add_argument("--json", action="store_true", help="print one JSON object")
    boot.add_argument("--email", default=None, help="user email (default: generated)")
    boot.add_argument("--organization", default="Organization", help="organization name")
    boot.add_argument("--environment", default="Default environment", help="environment name")
    boot.add_argument("--scopes", nargs="*", default=["*"], help="key scopes (default: *)")
    boot.set_defaults(func=cmd_bootstrap)
    demo = sub.add_parser("demo-data", help="generate realistic demo events (stop `serve` first with embedded chDB)")
    demo.add_argument("--events", type=int, default=100_000, help="number of events (default 100000)")
    demo.add_argument("--environment", type=int, default=None, help="environment id (default: the first one)")
    demo.add_argument("--days", type=int, default=30, help="spread over the last D days (default 30)")
    demo.add_argument("--seed", type=int, default=1, help="random seed; same seed, same data (default 1)")
    demo.set_defaults(func=cmd_demo_data)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

"""Versioned ClickHouse migrations, applied in order at startup by `migrate_clickhouse`.

ClickHouse has no transactional DDL, so every statement is idempotent on its own
(`IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`, …): a run that dies half-way is simply run again.
Applied versions are recorded in `<database>.tally_migrations`; a version found there is
skipped, so a second run issues only the bookkeeping statements. Two processes migrating at
the same moment may both apply a version: harmless because of the above, and the duplicate
bookkeeping row collapses in the ReplacingMergeTree (readers use DISTINCT anyway).

To add a migration, append `Migration(<next version>, "<slug>", <builder>)` to `MIGRATIONS`.
A builder receives `(database, cluster)` and returns the statements for both variants. Never
edit an applied migration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from app.clickhouse import ddl
from app.query_engine.executor.base import ClickHouseExecutor, quote_identifier

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "tally_migrations"

StatementsBuilder = Callable[[str, "str | None"], list[str]]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: StatementsBuilder


def _initial_tables(database: str, cluster: str | None) -> list[str]:
    return ddl.create_all_tables(database, cluster)


def _cohort_tables(database: str, cluster: str | None) -> list[str]:
    return ddl.create_cohort_tables(database, cluster)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial_tables", _initial_tables),
    Migration(2, "cohort_tables", _cohort_tables),
    Migration(3, "events_compact_parts", ddl.events_part_format),
)


def migrations_table_sql(database: str, cluster: str | None = None) -> str:
    db, table = quote_identifier(database), quote_identifier(MIGRATIONS_TABLE)
    if cluster is not None:
        # Replicated to every node, so whichever node a later run reaches sees the versions.
        engine = (
            f"ReplicatedReplacingMergeTree('/clickhouse/tables/noshard/{database}.{MIGRATIONS_TABLE}',"
            " '{replica}-{shard}')"
        )
        on_cluster = f" ON CLUSTER {quote_identifier(cluster)}"
    else:
        engine, on_cluster = "ReplacingMergeTree", ""
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{table}{on_cluster}\n"
        "(\n    `version` UInt32,\n    `name` String,\n"
        "    `applied_at` DateTime64(3, 'UTC') DEFAULT now64(3)\n)\n"
        f"ENGINE = {engine}\nORDER BY version"
    )


def render_all(database: str, cluster: str | None = None) -> list[str]:
    """Every statement a fresh database gets, for review or for running by hand."""
    statements = [ddl.create_database(database, cluster), migrations_table_sql(database, cluster)]
    for migration in MIGRATIONS:
        statements.extend(migration.statements(database, cluster))
    return statements


async def applied_versions(executor: ClickHouseExecutor, *, database: str) -> set[int]:
    db, table = quote_identifier(database), quote_identifier(MIGRATIONS_TABLE)
    result = await executor.execute(f"SELECT DISTINCT version FROM {db}.{table}")
    return {int(row[0]) for row in result.rows}


async def migrate_clickhouse(
    executor: ClickHouseExecutor, *, database: str, cluster: str | None = None
) -> list[int]:
    """Apply pending migrations in version order; returns the versions applied by this call."""
    _check_migrations()
    db, table = quote_identifier(database), quote_identifier(MIGRATIONS_TABLE)
    await executor.command(ddl.create_database(database, cluster), use_database=False)
    await executor.command(migrations_table_sql(database, cluster), use_database=False)
    done = await applied_versions(executor, database=database)
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        log.info("applying ClickHouse migration %s_%s", migration.version, migration.name)
        for statement in migration.statements(database, cluster):
            await executor.command(statement, use_database=False)
        await executor.command(
            f"INSERT INTO {db}.{table} (version, name) SELECT {{version:UInt32}}, {{name:String}}",
            {"version": migration.version, "name": migration.name},
            use_database=False,
        )
        applied.append(migration.version)
    return applied


def _check_migrations() -> None:
    versions = [m.version for m in MIGRATIONS]
    if versions != sorted(set(versions)) or any(v < 1 for v in versions):
        raise RuntimeError(f"ClickHouse migration versions must be unique and increasing: {versions}")

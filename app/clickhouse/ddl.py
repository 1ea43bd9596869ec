"""ClickHouse table definitions (spec/INGESTION.md §10), rendered for one node or a cluster.

Single node (`cluster=None`): the statements of §10 verbatim, as `ReplacingMergeTree` tables
in the configured database.

Cluster (`cluster="name"`), every statement `ON CLUSTER`:

- `events` is sharded: `sharded_events` is a `ReplicatedReplacingMergeTree` on each shard
  (`/clickhouse/tables/{shard}/<db>.sharded_events`, replica `{replica}`), and `events` is a
  `Distributed` table over it sharded by `sipHash64(distinct_id)` (created `AS` the local table,
  so the MATERIALIZED columns are computed on the shards). Queries and inserts use `events`.
- `person`, `person_distinct_id2`, `person_distinct_id_overrides`, `groups` are *replicated to
  every node, not sharded* (path `/clickhouse/tables/noshard/<db>.<table>`, replica
  `{replica}-{shard}`), under their plain names. Queries join events to these tables; on a
  `Distributed` events query the joined subquery runs on each shard, and it needs the full
  mapping locally (a Distributed table there would be a distributed subquery, which ClickHouse
  denies by default and which would be slow anyway). They are small next to events.

Names come from here or from validated settings only; every identifier is backquoted.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.query_engine.executor.base import quote_identifier


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    # "DEFAULT <expr>" or "MATERIALIZED <expr>", exactly as in §10.
    extra: str = ""

    @property
    def materialized(self) -> bool:
        return self.extra.startswith("MATERIALIZED")

    def render(self) -> str:
        # Column names are our constants (some start with `$`), so they are quoted here
        # rather than validated as identifiers.
        return " ".join(part for part in (f"`{self.name}`", self.type, self.extra) if part)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    version: str  # ReplacingMergeTree version column
    order_by: str
    partition_by: str | None = None
    sample_by: str | None = None
    # Set → sharded on a cluster (local `sharded_<name>` + Distributed `<name>`);
    # None → replicated to every node under its plain name.
    sharding_key: str | None = None
    # True → (Replicated)CollapsingMergeTree on the `version` column, which then holds the sign.
    collapsing: bool = False


def _json_field(key: str) -> str:
    return f"String MATERIALIZED replaceRegexpAll(JSONExtractRaw(properties, '{key}'), '^\"|\"$', '')"


def _mat(name: str, definition: str) -> Column:
    type_, _, expr = definition.partition(" MATERIALIZED ")
    return Column(name, type_, f"MATERIALIZED {expr}")


_DT6 = "DateTime64(6, 'UTC')"
_DT3 = "DateTime64(3, 'UTC')"

EVENTS = Table(
    name="events",
    columns=(
        Column("uuid", "UUID"),
        Column("event", "String"),
        Column("properties", "String"),
        Column("timestamp", _DT6),
        Column("team_id", "Int64"),
        Column("distinct_id", "String"),
        Column("elements_chain", "String"),
        Column("created_at", _DT6),
        Column("person_id", "UUID"),
        Column("person_created_at", _DT3),
        Column("person_properties", "String"),
        *(Column(f"group{i}_properties", "String") for i in range(5)),
        *(Column(f"group{i}_created_at", _DT3) for i in range(5)),
        Column("person_mode", "Enum8('full' = 0, 'propertyless' = 1, 'force_upgrade' = 2)"),
        Column("historical_migration", "Bool"),
        Column("inserted_at", _DT6, "DEFAULT now64()"),
        *(_mat(f"$group_{i}", _json_field(f"$group_{i}")) for i in range(5)),
        _mat("$session_id", _json_field("$session_id")),
        _mat("$window_id", _json_field("$window_id")),
        _mat(
            "$session_id_uuid",
            "Nullable(UInt128) MATERIALIZED toUInt128(JSONExtract(properties, '$session_id', 'Nullable(UUID)'))",
        ),
        _mat("elements_chain_href", "String MATERIALIZED extract(elements_chain, '[:\"]href=\"(.*?)\"')"),
        _mat(
            "elements_chain_texts",
            "Array(String) MATERIALIZED arrayDistinct(extractAll(elements_chain, '[:\"]text=\"(.*?)\"'))",
        ),
        _mat(
            "elements_chain_ids",
            "Array(String) MATERIALIZED arrayDistinct(extractAll(elements_chain, '[:\"]attr_id=\"(.*?)\"'))",
        ),
    ),
    version="inserted_at",
    partition_by="toYYYYMM(timestamp)",
    order_by="(team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))",
    sample_by="cityHash64(distinct_id)",
    sharding_key="sipHash64(distinct_id)",
)

PERSON = Table(
    name="person",
    columns=(
        Column("id", "UUID"),
        Column("created_at", _DT3),
        Column("team_id", "Int64"),
        Column("properties", "String"),
        Column("is_identified", "Int8"),
        Column("is_deleted", "Int8", "DEFAULT 0"),
        Column("version", "UInt64"),
    ),
    version="version",
    order_by="(team_id, id)",
)

_DISTINCT_ID_COLUMNS = (
    Column("team_id", "Int64"),
    Column("distinct_id", "String"),
    Column("person_id", "UUID"),
    Column("is_deleted", "Int8", "DEFAULT 0"),
    Column("version", "Int64"),
)

PERSON_DISTINCT_ID2 = Table(
    name="person_distinct_id2",
    columns=_DISTINCT_ID_COLUMNS,
    version="version",
    order_by="(team_id, distinct_id)",
)

# Same shape; only rows whose version > 0 (a distinct id that moved to another person).
PERSON_DISTINCT_ID_OVERRIDES = Table(
    name="person_distinct_id_overrides",
    columns=_DISTINCT_ID_COLUMNS,
    version="version",
    order_by="(team_id, distinct_id)",
)

GROUPS = Table(
    name="groups",
    columns=(
        Column("group_type_index", "UInt8"),
        Column("group_key", "String"),
        Column("created_at", _DT3),
        Column("team_id", "Int64"),
        Column("group_properties", "String"),
        Column("updated_at", _DT6, "DEFAULT now64()"),
    ),
    version="updated_at",
    order_by="(team_id, group_type_index, group_key)",
)

TABLES: tuple[Table, ...] = (EVENTS, PERSON, PERSON_DISTINCT_ID2, PERSON_DISTINCT_ID_OVERRIDES, GROUPS)

# Cohort membership (spec/QUERY_ENGINE.md §11.2), created by ClickHouse migration 2. A calculation
# of a dynamic cohort writes its members with a new `version` (sign 1) and cancels rows it drops
# (sign -1); readers take the cohort's current version and `HAVING sum(sign) > 0`.
COHORTPEOPLE = Table(
    name="cohortpeople",
    columns=(
        Column("person_id", "UUID"),
        Column("cohort_id", "Int64"),
        Column("team_id", "Int64"),
        Column("sign", "Int8"),
        Column("version", "UInt64"),
    ),
    version="sign",
    order_by="(team_id, cohort_id, person_id, version)",
    collapsing=True,
)

# Members of static cohorts (uploaded lists): one row per person.
PERSON_STATIC_COHORT = Table(
    name="person_static_cohort",
    columns=(
        Column("id", "UUID"),
        Column("person_id", "UUID"),
        Column("cohort_id", "Int64"),
        Column("team_id", "Int64"),
        Column("_timestamp", _DT6, "DEFAULT now64()"),
    ),
    version="_timestamp",
    order_by="(team_id, cohort_id, person_id, id)",
)

COHORT_TABLES: tuple[Table, ...] = (COHORTPEOPLE, PERSON_STATIC_COHORT)
# Every table the query engine may read (the catalog).
ALL_TABLES: tuple[Table, ...] = TABLES + COHORT_TABLES


def _insertable(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if not c.materialized)


# Columns an INSERT may name, in table order (MATERIALIZED ones are computed by ClickHouse).
# DEFAULT columns (`inserted_at`, `is_deleted`, `updated_at`) may be left out of an insert.
EVENTS_COLUMNS = _insertable(EVENTS)
EVENTS_MATERIALIZED_COLUMNS = tuple(c.name for c in EVENTS.columns if c.materialized)
PERSON_COLUMNS = _insertable(PERSON)
PERSON_DISTINCT_ID2_COLUMNS = _insertable(PERSON_DISTINCT_ID2)
PERSON_DISTINCT_ID_OVERRIDES_COLUMNS = _insertable(PERSON_DISTINCT_ID_OVERRIDES)
GROUPS_COLUMNS = _insertable(GROUPS)
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {t.name: _insertable(t) for t in TABLES}


# --- rendering ------------------------------------------------------------------------------


def _on_cluster(cluster: str | None) -> str:
    return f" ON CLUSTER {quote_identifier(cluster)}" if cluster is not None else ""


def create_database(database: str, cluster: str | None = None) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}{_on_cluster(cluster)}"


def local_name(table: Table, cluster: str | None) -> str:
    """The name of the table that physically stores rows on a node."""
    return f"sharded_{table.name}" if cluster is not None and table.sharding_key else table.name


def _engine(table: Table, database: str, cluster: str | None) -> str:
    kind = "CollapsingMergeTree" if table.collapsing else "ReplacingMergeTree"
    if cluster is None:
        return f"{kind}({table.version})"
    # Both names are validated identifiers, so they are safe inside the path literal.
    quote_identifier(database)
    name = local_name(table, cluster)
    if table.sharding_key:
        path, replica = f"/clickhouse/tables/{{shard}}/{database}.{name}", "{replica}"
    else:
        path, replica = f"/clickhouse/tables/noshard/{database}.{name}", "{replica}-{shard}"
    return f"Replicated{kind}('{path}', '{replica}', {table.version})"


def create_table(table: Table, database: str, cluster: str | None = None) -> list[str]:
    """The statements that create `table` (one on a single node, two for a sharded table)."""
    db = quote_identifier(database)
    name = local_name(table, cluster)
    columns = ",\n".join(f"    {c.render()}" for c in table.columns)
    lines = [
        f"CREATE TABLE IF NOT EXISTS {db}.{quote_identifier(name)}{_on_cluster(cluster)}",
        f"(\n{columns}\n)",
        f"ENGINE = {_engine(table, database, cluster)}",
    ]
    if table.partition_by:
        lines.append(f"PARTITION BY {table.partition_by}")
    lines.append(f"ORDER BY {table.order_by}")
    if table.sample_by:
        lines.append(f"SAMPLE BY {table.sample_by}")
    statements = ["\n".join(lines)]
    if cluster is not None and table.sharding_key:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {db}.{quote_identifier(table.name)}{_on_cluster(cluster)}"
            f" AS {db}.{quote_identifier(name)}"
            f"\nENGINE = Distributed('{cluster}', '{database}', '{name}', {table.sharding_key})"
        )
    return statements


# Parts of `events` below this many uncompressed bytes are written in the compact format (one
# data file) rather than the wide one (files per column). ClickHouse's default, 10 MB, made the
# embedded engine's staged moves (half a second of capture under load, ~10–30k rows) and the first
# merges of their parts wide, and a wide part of that size cost ~5x the CPU per row of a compact
# one (benchmarks/RESULTS.md, ingestion). Larger parts, from merges, are still wide.
EVENTS_MIN_BYTES_FOR_WIDE_PART = 64 * 1024 * 1024


def events_part_format(database: str, cluster: str | None = None) -> list[str]:
    """The `events` storage table's part format setting (see EVENTS_MIN_BYTES_FOR_WIDE_PART)."""
    target = f"{quote_identifier(database)}.{quote_identifier(local_name(EVENTS, cluster))}"
    return [f"ALTER TABLE {target}{_on_cluster(cluster)}"
            f" MODIFY SETTING min_bytes_for_wide_part = {int(EVENTS_MIN_BYTES_FOR_WIDE_PART)}"]


def create_all_tables(database: str, cluster: str | None = None) -> list[str]:
    """Every statement of §10 for `database`, in creation order (local tables first)."""
    statements: list[str] = []
    for table in TABLES:
        statements.extend(create_table(table, database, cluster))
    return statements


def create_cohort_tables(database: str, cluster: str | None = None) -> list[str]:
    statements: list[str] = []
    for table in COHORT_TABLES:
        statements.extend(create_table(table, database, cluster))
    return statements

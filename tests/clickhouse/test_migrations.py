"""Migrations against the session's real ClickHouse (already migrated once by the fixture)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timezone

import pytest

from app.clickhouse.ddl import EVENTS_COLUMNS, EVENTS_MIN_BYTES_FOR_WIDE_PART
from app.clickhouse.migrations import MIGRATIONS, MIGRATIONS_TABLE, migrate_clickhouse

pytestmark = pytest.mark.asyncio(loop_scope="session")

_GROUP = "String MATERIALIZED"
# spec/INGESTION.md §10, column by column: (name, type, default kind).
EXPECTED_COLUMNS = {
    "events": [
        ("uuid", "UUID", ""),
        ("event", "String", ""),
        ("properties", "String", ""),
        ("timestamp", "DateTime64(6, 'UTC')", ""),
        ("team_id", "Int64", ""),
        ("distinct_id", "String", ""),
        ("elements_chain", "String", ""),
        ("created_at", "DateTime64(6, 'UTC')", ""),
        ("person_id", "UUID", ""),
        ("person_created_at", "DateTime64(3, 'UTC')", ""),
        ("person_properties", "String", ""),
        *[(f"group{i}_properties", "String", "") for i in range(5)],
        *[(f"group{i}_created_at", "DateTime64(3, 'UTC')", "") for i in range(5)],
        ("person_mode", "Enum8('full' = 0, 'propertyless' = 1, 'force_upgrade' = 2)", ""),
        ("historical_migration", "Bool", ""),
        ("inserted_at", "DateTime64(6, 'UTC')", "DEFAULT"),
        *[(f"$group_{i}", "String", "MATERIALIZED") for i in range(5)],
        ("$session_id", "String", "MATERIALIZED"),
        ("$window_id", "String", "MATERIALIZED"),
        ("$session_id_uuid", "Nullable(UInt128)", "MATERIALIZED"),
        ("elements_chain_href", "String", "MATERIALIZED"),
        ("elements_chain_texts", "Array(String)", "MATERIALIZED"),
        ("elements_chain_ids", "Array(String)", "MATERIALIZED"),
    ],
    "person": [
        ("id", "UUID", ""),
        ("created_at", "DateTime64(3, 'UTC')", ""),
        ("team_id", "Int64", ""),
        ("properties", "String", ""),
        ("is_identified", "Int8", ""),
        ("is_deleted", "Int8", "DEFAULT"),
        ("version", "UInt64", ""),
    ],
    "person_distinct_id2": [
        ("team_id", "Int64", ""),
        ("distinct_id", "String", ""),
        ("person_id", "UUID", ""),
        ("is_deleted", "Int8", "DEFAULT"),
        ("version", "Int64", ""),
    ],
    "groups": [
        ("group_type_index", "UInt8", ""),
        ("group_key", "String", ""),
        ("created_at", "DateTime64(3, 'UTC')", ""),
        ("team_id", "Int64", ""),
        ("group_properties", "String", ""),
        ("updated_at", "DateTime64(6, 'UTC')", "DEFAULT"),
    ],
}
EXPECTED_COLUMNS["person_distinct_id_overrides"] = EXPECTED_COLUMNS["person_distinct_id2"]

EXPECTED_ENGINES = {
    "events": (
        "ReplacingMergeTree",
        "toYYYYMM(timestamp)",
        "team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid)",
        "cityHash64(distinct_id)",
    ),
    "person": ("ReplacingMergeTree", "", "team_id, id", ""),
    "person_distinct_id2": ("ReplacingMergeTree", "", "team_id, distinct_id", ""),
    "person_distinct_id_overrides": ("ReplacingMergeTree", "", "team_id, distinct_id", ""),
    "groups": ("ReplacingMergeTree", "", "team_id, group_type_index, group_key", ""),
}


class TestMigrate:
    async def test_second_run_is_a_noop(self, ch_executor):
        db = ch_executor.database
        assert await migrate_clickhouse(ch_executor, database=db) == []
        result = await ch_executor.execute(
            f"SELECT version, name, count() FROM `{db}`.{MIGRATIONS_TABLE} GROUP BY version, name ORDER BY version"
        )
        assert result.rows == [(m.version, m.name, 1) for m in MIGRATIONS]

    @pytest.mark.parametrize("table", sorted(EXPECTED_COLUMNS))
    async def test_columns_match_spec(self, ch_executor, table):
        result = await ch_executor.execute(
            "SELECT name, type, default_kind FROM system.columns"
            " WHERE database = {db:String} AND table = {t:String} ORDER BY position",
            {"db": ch_executor.database, "t": table},
        )
        assert result.rows == EXPECTED_COLUMNS[table]

    @pytest.mark.parametrize("table", sorted(EXPECTED_ENGINES))
    async def test_engine_and_keys_match_spec(self, ch_executor, table):
        result = await ch_executor.execute(
            "SELECT engine, partition_key, sorting_key, sampling_key, engine_full FROM system.tables"
            " WHERE database = {db:String} AND name = {t:String}",
            {"db": ch_executor.database, "t": table},
        )
        engine, partition_key, sorting_key, sampling_key, engine_full = result.rows[0]
        if engine == "Distributed":  # a cluster run: the keys live on the local table
            assert table == "events"
            return
        assert engine.endswith(EXPECTED_ENGINES[table][0])
        assert (partition_key, sorting_key, sampling_key) == EXPECTED_ENGINES[table][1:]
        version = {"events": "inserted_at", "groups": "updated_at"}.get(table, "version")
        assert f"{version})" in engine_full

    async def test_invalid_identifiers_are_refused(self, ch_executor):
        with pytest.raises(ValueError):
            await migrate_clickhouse(ch_executor, database="tally; DROP DATABASE x")
        with pytest.raises(ValueError):
            await migrate_clickhouse(ch_executor, database=ch_executor.database, cluster="c`x")


class TestEventsPartFormat:
    async def test_parts_up_to_the_threshold_are_compact(self, ch_executor):
        # ~12 MB of rows: over ClickHouse's default wide-part threshold (10 MB), under ours. The
        # rows go to a month no other test writes, so the part is the only one of its partition.
        assert EVENTS_MIN_BYTES_FOR_WIDE_PART > 12 * 1024 * 1024
        team_id = random.randint(10**12, 10**15)
        ts = datetime(1987, 6, 1, tzinfo=timezone.utc)
        props = json.dumps({"blob": "x" * 6000})
        values = {
            "event": "big", "properties": props, "timestamp": ts, "team_id": team_id, "distinct_id": "d",
            "elements_chain": "", "created_at": ts, "person_id": uuid.uuid4(), "person_created_at": ts,
            "person_properties": "{}", "person_mode": "full", "historical_migration": False, "inserted_at": ts,
            **{f"group{i}_properties": "" for i in range(5)}, **{f"group{i}_created_at": ts for i in range(5)},
        }
        rows = [tuple(uuid.uuid4() if c == "uuid" else values[c] for c in EVENTS_COLUMNS) for _ in range(2_000)]
        await ch_executor.insert("events", EVENTS_COLUMNS, rows)
        result = await ch_executor.execute(
            "SELECT part_type, rows, data_uncompressed_bytes FROM system.parts WHERE database = {db:String}"
            " AND table = 'events' AND partition = '198706' AND active",
            {"db": ch_executor.database},
        )
        [(part_type, count, size)] = result.rows
        assert (part_type, count) == ("Compact", 2_000)
        assert size > 10 * 1024 * 1024


class TestMaterializedColumns:
    async def test_values_lose_their_quotes(self, ch_executor):
        team_id = random.randint(10**12, 10**15)
        session = uuid.UUID("0190f2a4-1b2c-7d3e-8f40-123456789abc")
        properties = {
            "$group_0": 42,
            "$group_1": "acme",
            "$group_3": 'quote"inside',
            "$session_id": str(session),
            "$window_id": "w1",
        }
        now = datetime(2024, 5, 1, tzinfo=timezone.utc)
        values = {
            "uuid": uuid.uuid4(),
            "event": "$pageview",
            "properties": json.dumps(properties),
            "timestamp": now,
            "team_id": team_id,
            "distinct_id": "d1",
            "elements_chain": 'a.btn:attr_id="buy"href="/pay"nth-child="1"text="Buy now"',
            "created_at": now,
            "person_id": uuid.uuid4(),
            "person_created_at": now,
            "person_properties": "{}",
            "person_mode": "full",
            "historical_migration": False,
            "inserted_at": now,
            **{f"group{i}_properties": "" for i in range(5)},
            **{f"group{i}_created_at": now for i in range(5)},
        }
        await ch_executor.insert("events", EVENTS_COLUMNS, [tuple(values[c] for c in EVENTS_COLUMNS)])
        result = await ch_executor.execute(
            "SELECT `$group_0`, `$group_1`, `$group_2`, `$group_3`, `$session_id`, `$window_id`,"
            " `$session_id_uuid` = toUInt128(toUUID({s:String})), elements_chain_href,"
            " elements_chain_texts, elements_chain_ids FROM events WHERE team_id = {t:Int64}",
            {"t": team_id, "s": str(session)},
        )
        assert result.rows == [
            ("42", "acme", "", 'quote\\"inside', str(session), "w1", True, "/pay", ["Buy now"], ["buy"])
        ]

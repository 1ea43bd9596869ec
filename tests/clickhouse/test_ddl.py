"""Rendering of the ClickHouse DDL for a single node and for a cluster (no server needed)."""

from __future__ import annotations

import re

import pytest

from app.clickhouse import ddl
from app.clickhouse.migrations import render_all


def _statement_for(statements: list[str], name: str, verb: str = "CREATE") -> str:
    (found,) = [s for s in statements
                if s.startswith(verb) and re.split(" ON CLUSTER| MODIFY", s.split("\n")[0])[0].endswith(f".`{name}`")]
    return found


class TestClusterVariant:
    def test_events_are_sharded_and_distributed(self):
        statements = render_all("tally", "tally_cluster")
        local = _statement_for(statements, "sharded_events")
        assert "ON CLUSTER `tally_cluster`" in local
        assert (
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally.sharded_events',"
            " '{replica}', inserted_at)"
        ) in local
        assert "SAMPLE BY cityHash64(distinct_id)" in local
        distributed = _statement_for(statements, "events")
        assert "ON CLUSTER `tally_cluster` AS `tally`.`sharded_events`" in distributed
        assert "Distributed('tally_cluster', 'tally', 'sharded_events', sipHash64(distinct_id))" in distributed

    def test_every_statement_runs_on_the_cluster(self):
        statements = render_all("tally", "tally_cluster")
        assert statements[0] == "CREATE DATABASE IF NOT EXISTS `tally` ON CLUSTER `tally_cluster`"
        assert all("ON CLUSTER `tally_cluster`" in s for s in statements)
        # Every statement may run twice (a migration that died half-way is run again).
        assert all("IF NOT EXISTS" in s or " MODIFY SETTING " in s for s in statements)

    def test_part_format_is_set_on_the_storage_table(self):
        statement = _statement_for(render_all("tally", "tally_cluster"), "sharded_events", verb="ALTER")
        assert statement == ("ALTER TABLE `tally`.`sharded_events` ON CLUSTER `tally_cluster`"
                             " MODIFY SETTING min_bytes_for_wide_part = 67108864")

    @pytest.mark.parametrize("name", ["person", "person_distinct_id2", "person_distinct_id_overrides", "groups"])
    def test_person_tables_are_replicated_everywhere(self, name):
        statement = _statement_for(render_all("tally", "tally_cluster"), name)
        assert f"ReplicatedReplacingMergeTree('/clickhouse/tables/noshard/tally.{name}', '{{replica}}-{{shard}}'" in statement
        assert "Distributed" not in statement

    def test_database_name_is_used_everywhere(self):
        statements = render_all("analytics", "c1")
        assert not any("tally." in s or "`tally`" in s for s in statements)
        assert "Distributed('c1', 'analytics', 'sharded_events', sipHash64(distinct_id))" in "\n".join(statements)


class TestSingleNodeVariant:
    def test_plain_replacing_merge_trees(self):
        text = "\n".join(render_all("tally"))
        for word in ("ON CLUSTER", "Replicated", "Distributed", "sipHash64", "sharded_"):
            assert word not in text
        events = _statement_for(render_all("tally"), "events")
        assert "ENGINE = ReplacingMergeTree(inserted_at)\nPARTITION BY toYYYYMM(timestamp)" in events
        assert "ORDER BY (team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))" in events
        assert (
            "`$group_0` String MATERIALIZED replaceRegexpAll(JSONExtractRaw(properties, '$group_0'), '^\"|\"$', '')"
            in events
        )
        assert _statement_for(render_all("tally"), "events", verb="ALTER") == (
            "ALTER TABLE `tally`.`events` MODIFY SETTING min_bytes_for_wide_part = 67108864")


class TestIdentifiers:
    @pytest.mark.parametrize("bad", ["", "1db", "db-x", "db;x", "db`x", "db x", "db.x", "é"])
    def test_bad_database_or_cluster_is_refused(self, bad):
        with pytest.raises(ValueError):
            render_all(bad)
        with pytest.raises(ValueError):
            render_all("tally", bad)


class TestColumnConstants:
    def test_insert_columns_exclude_materialized(self):
        assert ddl.EVENTS_COLUMNS[:3] == ("uuid", "event", "properties")
        assert ddl.EVENTS_COLUMNS[-1] == "inserted_at"
        assert len(ddl.EVENTS_COLUMNS) == 24
        assert not any(c.startswith("$") or c.startswith("elements_chain_") for c in ddl.EVENTS_COLUMNS)
        assert ddl.EVENTS_MATERIALIZED_COLUMNS[0] == "$group_0"
        assert len(ddl.EVENTS_MATERIALIZED_COLUMNS) == 11
        assert ddl.PERSON_COLUMNS == ("id", "created_at", "team_id", "properties", "is_identified", "is_deleted", "version")
        assert ddl.PERSON_DISTINCT_ID2_COLUMNS == ("team_id", "distinct_id", "person_id", "is_deleted", "version")
        assert ddl.PERSON_DISTINCT_ID_OVERRIDES_COLUMNS == ddl.PERSON_DISTINCT_ID2_COLUMNS
        assert ddl.GROUPS_COLUMNS == (
            "group_type_index", "group_key", "created_at", "team_id", "group_properties", "updated_at",
        )
        assert set(ddl.TABLE_COLUMNS) == {
            "events", "person", "person_distinct_id2", "person_distinct_id_overrides", "groups",
        }

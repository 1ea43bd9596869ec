"""Staged appends on the embedded engine (app/query_engine/executor/staging.py), against real chDB.

Each test gets a database of its own on the session's chDB path, so dropping or recovering stage
tables never touches the stages the rest of the suite is writing through.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid

import pytest

from app.clickhouse.ddl import EVENTS_COLUMNS
from app.clickhouse.migrations import migrate_clickhouse
from app.query_engine.executor import staging
from app.query_engine.executor.base import ClickHouseError
from app.query_engine.executor.chdb import SMALL_INSERT_ROWS, ChdbExecutor
from app.query_engine.executor.staging import stage_name
from tests.query_engine.executor.test_chdb import _event_row, _team

pytestmark = pytest.mark.asyncio(loop_scope="session")

COLUMNS = [c for c in EVENTS_COLUMNS if c != "inserted_at"]


def _rows(team_id: int, count: int, start: int = 0) -> list[tuple]:
    index = EVENTS_COLUMNS.index("inserted_at")
    return [r[:index] + r[index + 1:] for r in (_event_row(team_id, i, f"s{i}") for i in range(start, start + count))]


@pytest.fixture
async def chdb_path(ch_executor, tmp_path_factory) -> str:
    """chDB opens one data path per process: the session's, when the session runs on chDB."""
    if isinstance(ch_executor, ChdbExecutor):
        return ch_executor.path
    return str(tmp_path_factory.mktemp("staging-chdb"))


@pytest.fixture
async def own(chdb_path):
    """An appending executor in a database of its own on the session's chDB path."""
    database = f"staging_{uuid.uuid4().hex[:12]}"
    executor = ChdbExecutor(chdb_path, database, pool_size=1)
    await migrate_clickhouse(executor, database=database)
    yield executor
    await executor.close()
    cleanup = ChdbExecutor(chdb_path, database, pool_size=1)
    await cleanup.command(f"DROP DATABASE IF EXISTS `{database}`", use_database=False)
    await cleanup.close()


@pytest.fixture
async def peek(chdb_path):
    """Another executor on the same path, which stages nothing: it reads without moving `own`'s stages."""
    executor = ChdbExecutor(chdb_path, "tally_staging_peek", pool_size=1)
    yield executor
    await executor.close()


async def _peek(peek, database: str, table: str, team_id: int) -> int:
    result = await peek.execute(f"SELECT count() FROM `{database}`.`{table}` WHERE team_id = {{t:Int64}}",
                                {"t": team_id})
    return result.rows[0][0]


async def _stored(own, team_id: int) -> tuple[int, int]:
    """(rows, distinct uuids) of a team in `events`, read through `own` (which moves its stages first)."""
    result = await own.execute("SELECT count(), uniqExact(uuid) FROM events WHERE team_id = {t:Int64}", {"t": team_id})
    return tuple(result.rows[0])


async def _stage_exists(peek, database: str, index: int) -> bool:
    result = await peek.execute("SELECT count() FROM system.tables WHERE database = {d:String} AND name = {n:String}",
                                {"d": database, "n": stage_name("events", index)})
    return result.rows[0][0] == 1


def _committed(file: staging.StageFile) -> int:
    with open(file.committed_path, "rb") as fh:
        return int.from_bytes(fh.read(8), "little")


def _size(path: str) -> int:
    with open(path, "rb") as fh:
        return fh.seek(0, 2)


class TestAppend:
    async def test_reads_through_the_executor_see_appended_rows_at_once(self, own):
        team = _team()
        await own.append("events", COLUMNS, _rows(team, 300))
        assert await _stored(own, team) == (300, 300)

    async def test_appended_rows_wait_in_the_stage(self, own, peek, monkeypatch):
        monkeypatch.setattr(staging, "STAGE_SECONDS", 60.0)
        team = _team()
        await own.append("events", COLUMNS, _rows(team, 200))
        assert await _peek(peek, own.database, stage_name("events", 0), team) == 200  # durable, staged
        assert await _peek(peek, own.database, "events", team) == 0

    async def test_staged_rows_reach_the_table_within_a_second_without_reads(self, own, peek):
        team = _team()
        started = time.monotonic()
        await own.append("events", COLUMNS, _rows(team, 200))
        while await _peek(peek, own.database, "events", team) < 200:
            assert time.monotonic() - started < 1.5, "staged rows did not reach events"
            await asyncio.sleep(0.02)
        assert await _peek(peek, own.database, "events", team) == 200
        while await _peek(peek, own.database, stage_name("events", 0), team):  # emptied after the move
            assert time.monotonic() - started < 3.0, "the stage was not emptied"
            await asyncio.sleep(0.02)

    async def test_materialized_columns_are_computed_by_the_move(self, own):
        team = _team()
        row = dict(zip(COLUMNS, _rows(team, 1)[0]))
        row["properties"] = '{"$session_id": "0190a3c2-6f1e-7000-8000-000000000001", "$group_0": "acme"}'
        row["elements_chain"] = 'a:href="/pricing"attr_id="buy"text="Buy"'
        await own.append("events", COLUMNS, [tuple(row[c] for c in COLUMNS)])
        result = await own.execute(
            "SELECT `$session_id`, `$group_0`, elements_chain_href, elements_chain_ids, elements_chain_texts"
            " FROM events WHERE team_id = {t:Int64}", {"t": team})
        assert result.rows == [("0190a3c2-6f1e-7000-8000-000000000001", "acme", "/pricing", ["buy"], ["Buy"])]

    async def test_large_batches_are_inserted_directly(self, own, peek):
        team = _team()
        await own.append("events", COLUMNS, _rows(team, SMALL_INSERT_ROWS))
        assert await _peek(peek, own.database, "events", team) == SMALL_INSERT_ROWS
        assert not await _stage_exists(peek, own.database, 0)

    async def test_tables_without_staging_are_inserted_directly(self, own, peek):
        await own.append("person", ["id", "created_at", "team_id", "properties", "is_identified", "version"],
                         [(uuid.uuid4(), "2024-01-01 00:00:00", 7, "{}", 0, 1)])
        result = await peek.execute(f"SELECT count() FROM `{own.database}`.person WHERE team_id = 7")
        assert result.rows == [(1,)]

    async def test_columns_must_stay_the_same(self, own):
        await own.append("events", COLUMNS, _rows(_team(), 1))
        with pytest.raises(ValueError, match="must name the columns"):
            await own.append("events", COLUMNS[:-1], [r[:-1] for r in _rows(_team(), 1)])

    async def test_concurrent_appends_and_moves_store_every_row_once(self, own):
        team = _team()

        async def writer(n: int) -> None:
            await asyncio.sleep(random.random() * 0.05)
            await own.append("events", COLUMNS, _rows(team, 50, start=n * 50))

        async def reader() -> None:
            for _ in range(10):
                await asyncio.sleep(random.random() * 0.02)
                await own.execute("SELECT 1")  # every read moves what is staged

        await asyncio.gather(*(writer(n) for n in range(40)), reader(), reader())
        assert await _stored(own, team) == (2000, 2000)

    async def test_close_moves_what_is_staged(self, own, peek, monkeypatch):
        monkeypatch.setattr(staging, "STAGE_SECONDS", 60.0)
        team = _team()
        await own.append("events", COLUMNS, _rows(team, 120))
        assert await _peek(peek, own.database, "events", team) == 0
        await own.close()
        assert await _peek(peek, own.database, "events", team) == 120

    async def test_a_move_repeated_after_a_failure_skips_rows_already_copied(self, own, monkeypatch):
        monkeypatch.setattr(staging, "STAGE_SECONDS", 60.0)
        team = _team()
        rows = _rows(team, 100)
        await own.append("events", COLUMNS, rows)
        # The copy of the first 40 had happened when the move failed (before the stage was emptied).
        await own.insert("events", COLUMNS, rows[:40])
        own._staged["events"]._stages[0].suspect = True
        await own._staged["events"].flush()
        assert await _stored(own, team) == (100, 100)


async def _staged(own, monkeypatch, count: int) -> tuple[int, staging.StageFile]:
    """A team with `count` rows in the active stage (which is not moved for a minute), and its file."""
    monkeypatch.setattr(staging, "STAGE_SECONDS", 60.0)
    team = _team()
    await own.append("events", COLUMNS, _rows(team, count))
    return team, own._staged["events"]._stages[0].file


class TestStageFile:
    """A `File` stage has no rollback of its own: the committed size is what survives."""

    async def test_the_committed_size_follows_every_append_and_move(self, own, monkeypatch):
        monkeypatch.setattr(staging, "STAGE_SECONDS", 60.0)
        team = _team()
        await asyncio.gather(*(own.append("events", COLUMNS, _rows(team, 30, start=n * 30)) for n in range(12)))
        file = own._staged["events"]._stages[0].file
        assert file.committed > 0
        assert _committed(file) == file.committed == _size(file.data_path)
        await own._staged["events"].flush()
        assert _committed(file) == file.committed == _size(file.data_path) == 0
        assert await _stored(own, team) == (360, 360)

    async def test_an_append_that_fails_after_writing_leaves_nothing_staged(self, own, monkeypatch):
        team, file = await _staged(own, monkeypatch, 10)
        before = file.committed

        def broken_commit(self) -> None:  # the rows are written, recording their end fails
            assert _size(self.data_path) > self.committed
            raise OSError("disk full")

        monkeypatch.setattr(staging.StageFile, "commit", broken_commit)
        with pytest.raises(OSError, match="disk full"):
            await own.append("events", COLUMNS, _rows(team, 10, start=10))
        assert _size(file.data_path) == _committed(file) == before  # cut back
        monkeypatch.undo()
        monkeypatch.setattr(staging, "STAGE_SECONDS", 60.0)
        await own.append("events", COLUMNS, _rows(team, 5, start=100))
        assert await _stored(own, team) == (15, 15)

    async def test_an_append_the_engine_rejects_leaves_nothing_staged(self, own, monkeypatch):
        team, file = await _staged(own, monkeypatch, 10)
        bad = [tuple("not a uuid" if c == "uuid" else v for c, v in zip(COLUMNS, r)) for r in _rows(team, 10, start=10)]
        with pytest.raises(ClickHouseError):
            await own.append("events", COLUMNS, bad)
        assert _size(file.data_path) == _committed(file) == file.committed
        assert await _stored(own, team) == (10, 10)

    async def test_a_torn_tail_is_cut_back_when_the_stage_is_recovered(self, own, monkeypatch):
        team, file = await _staged(own, monkeypatch, 60)
        staged = own._staged.pop("events")  # the process dies here: nothing moves, nothing closes
        staged._timer.cancel()
        file.close()
        with open(file.data_path, "ab") as fh:  # an append killed halfway through its block
            fh.write(b"\x17\xe8\x07\x04uuid\x04UUID\x00\x01")
        assert await staging.recover_staged(own.database, run=own._run_insert_lane, select=own._select_insert_lane) == 2
        assert await _stored(own, team) == (60, 60)
        assert not os.path.exists(file.committed_path)


class TestRecover:
    async def _leave_stage(self, executor: ChdbExecutor, index: int, rows: list[tuple], *,
                           engine: str = staging.STAGE_ENGINE) -> None:
        """What a process killed with rows staged leaves behind (a StripeLog stage: an older version)."""
        db, cols = f"`{executor.database}`", ", ".join(f"`{c}`" for c in COLUMNS)
        name = stage_name("events", index)
        await executor.command(f"CREATE TABLE {db}.`{name}` ENGINE = {engine} AS SELECT {cols} FROM {db}.events WHERE 0")
        await executor.insert(name, COLUMNS, rows)
        if engine == staging.STAGE_ENGINE:  # acknowledged appends: their end is committed
            result = await executor.execute("SELECT data_paths[1] FROM system.tables WHERE database = {d:String}"
                                            " AND name = {n:String}", {"d": executor.database, "n": name})
            path = result.rows[0][0]
            with open(path + staging.COMMITTED_SUFFIX, "wb") as fh:
                fh.write(_size(path).to_bytes(8, "little"))

    @pytest.mark.parametrize("engine", [staging.STAGE_ENGINE, "StripeLog"])
    async def test_recover_moves_staged_rows_once_and_drops_the_stages(self, own, peek, engine):
        team = _team()
        rows = _rows(team, 90)
        await self._leave_stage(own, 0, rows[:60], engine=engine)
        await self._leave_stage(own, 1, rows[60:], engine=engine)
        # Killed between the copy of stage 0 and its emptying: 25 of its rows are in events already.
        await own.insert("events", COLUMNS, rows[:25])
        await own.recover()
        assert await _stored(own, team) == (90, 90)
        assert not await _stage_exists(peek, own.database, 0)
        assert not await _stage_exists(peek, own.database, 1)
        # Appending afterwards creates fresh stages.
        await own.append("events", COLUMNS, _rows(team, 5, start=1000))
        result = await own.execute("SELECT count() FROM events WHERE team_id = {t:Int64}", {"t": team})
        assert result.rows == [(95,)]

    @pytest.mark.parametrize(("engine", "swap", "refusal"), [
        (staging.STAGE_ENGINE, True, "has the columns"),  # a version whose rows had two columns the other way round
        ("StripeLog", False, "is a StripeLog table"),  # a version that staged in StripeLog tables
    ])
    async def test_a_stage_left_by_another_version_is_refused_until_recovered(self, own, engine, swap, refusal):
        # Appends name no columns and commit the stage file's size, so rows must never land in a
        # stage with other columns or of another engine.
        team = _team()
        columns = [COLUMNS[1], COLUMNS[0], *COLUMNS[2:]] if swap else COLUMNS
        db, cols = f"`{own.database}`", ", ".join(f"`{c}`" for c in columns)
        await own.command(f"CREATE TABLE {db}.`{stage_name('events', 0)}` ENGINE = {engine}"
                          f" AS SELECT {cols} FROM {db}.events WHERE 0")
        with pytest.raises(RuntimeError, match=refusal):
            await own.append("events", COLUMNS, _rows(team, 3))
        await own.recover()
        await own.append("events", COLUMNS, _rows(team, 3))
        assert await _stored(own, team) == (3, 3)

    async def test_recover_with_nothing_staged_is_a_no_op(self, own):
        assert await staging.recover_staged(own.database, run=own._run_insert_lane,
                                            select=own._select_insert_lane) == 0

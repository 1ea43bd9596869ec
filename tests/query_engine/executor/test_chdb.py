"""The session's real ClickHouse executor (chDB unless APP_TEST_CLICKHOUSE_URL is set)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app.clickhouse.ddl import EVENTS_COLUMNS
from app.query_engine.executor.base import (
    ClickHouseCancelled,
    ClickHouseError,
    ClickHouseTimeout,
    ClickHouseUnavailable,
    ExecuteSettings,
)
from app.query_engine.executor.chdb import ChdbExecutor

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Scans ~1e11 rows: runs for minutes unless cancelled or limited.
LONG_QUERY = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1"

HOSTILE = [
    "it's",
    'say "hi"',
    "back\\slash \\N \\' \\\\",
    "{p1:String}",
    "{p0:String} }{ {{x}}",
    "line1\nline2\r\nend\t",
    "nul\x00byte",
    "\\N",
    "",
    "naïve ünïcödé — 日本語 😀",
    "'; DROP TABLE events; --",
    "*/ /* tally_query_id:evil */",
    "`backtick` $dollar",
]


def _team() -> int:
    return random.randint(10**12, 10**15)


def _event_row(team_id: int, i: int, text: str) -> tuple:
    ts = datetime(2024, 5, 1, tzinfo=timezone.utc) + timedelta(seconds=i, microseconds=i)
    values = {
        "uuid": uuid.UUID(int=team_id * 1_000_000 + i),
        "event": f"ev {text}",
        "properties": json.dumps({"text": text, "i": i}),
        "timestamp": ts,
        "team_id": team_id,
        "distinct_id": f"user {text} {i}",
        "elements_chain": text,
        "created_at": ts,
        "person_id": uuid.UUID(int=i + 1),
        "person_created_at": datetime(2024, 1, 1, tzinfo=timezone.utc),
        "person_properties": text,
        "person_mode": "full",
        "historical_migration": False,
        "inserted_at": ts,
    }
    for g in range(5):
        values[f"group{g}_properties"] = text
        values[f"group{g}_created_at"] = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return tuple(values[c] for c in EVENTS_COLUMNS)


async def _wait_running(ch_executor, query_id: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = await ch_executor.progress(query_id)
        if progress is not None and progress.rows_read > 0:
            return progress
        await asyncio.sleep(0.05)
    raise AssertionError(f"query {query_id} never showed up as running")


class TestParams:
    @pytest.mark.parametrize("value", HOSTILE)
    async def test_hostile_string_round_trips(self, ch_executor, value):
        result = await ch_executor.execute("SELECT {p0:String} AS v, length({p0:String}) AS n", {"p0": value})
        assert result.rows == [(value, len(value.encode()))]

    async def test_lookalike_placeholder_is_not_substituted(self, ch_executor):
        result = await ch_executor.execute(
            "SELECT {p0:String}, {p1:String}", {"p0": "{p1:String}", "p1": "second"}
        )
        assert result.rows == [("{p1:String}", "second")]

    async def test_array_of_hostile_strings(self, ch_executor):
        result = await ch_executor.execute("SELECT {p0:Array(String)}", {"p0": HOSTILE})
        assert result.rows == [(HOSTILE,)]

    async def test_in_list_and_null(self, ch_executor):
        result = await ch_executor.execute(
            "SELECT number FROM numbers(10) WHERE number IN {p0:Array(UInt64)} AND {p1:Nullable(String)} IS NULL"
            " ORDER BY number",
            {"p0": [2, 5], "p1": None},
        )
        assert result.rows == [(2,), (5,)]

    async def test_typed_values(self, ch_executor):
        when = datetime(2024, 2, 3, 4, 5, 6, 789000, tzinfo=timezone.utc)
        result = await ch_executor.execute(
            "SELECT {i:Int64}, {f:Float64}, {b:Bool}, {d:DateTime64(3, 'UTC')}, {u:UUID}",
            {"i": -(2**63), "f": 0.1, "b": True, "d": when, "u": uuid.UUID(int=7)},
        )
        assert result.rows == [(-(2**63), 0.1, True, "2024-02-03 04:05:06.789", str(uuid.UUID(int=7)))]


class TestResultTypes:
    async def test_types_are_consistent(self, ch_executor):
        result = await ch_executor.execute(
            "SELECT toUInt64(18446744073709551615) AS u64, toInt64(-5) AS i64, toUInt8(3) AS u8,"
            " toFloat64(1.5) AS f, toDateTime64('2024-01-02 03:04:05.123456', 6, 'UTC') AS dt,"
            " toDate('2024-01-02') AS d, toUInt128('340282366920938463463374607431768211455') AS u128,"
            " [1, 2] AS arr, CAST(NULL AS Nullable(String)) AS n, true AS b"
        )
        assert result.columns == ["u64", "i64", "u8", "f", "dt", "d", "u128", "arr", "n", "b"]
        assert result.types[:3] == ["UInt64", "Int64", "UInt8"]
        assert result.rows == [
            (
                18446744073709551615,
                -5,
                3,
                1.5,
                "2024-01-02 03:04:05.123456",
                "2024-01-02",
                2**128 - 1,
                [1, 2],
                None,
                True,
            )
        ]
        assert all(type(v) is int for v in result.rows[0][:3])
        assert type(result.rows[0][3]) is float

    async def test_statistics(self, ch_executor):
        result = await ch_executor.execute("SELECT count() FROM numbers(1000)")
        assert result.rows == [(1000,)]
        assert result.rows_read == 1000

    async def test_empty_result(self, ch_executor):
        result = await ch_executor.execute("SELECT number FROM numbers(10) WHERE number > 100")
        assert result.columns == ["number"]
        assert result.rows == []


class TestInsert:
    async def test_hostile_rows_read_back_identical(self, ch_executor):
        team_id = _team()
        rows = [_event_row(team_id, i, HOSTILE[i % len(HOSTILE)] + str(i)) for i in range(10_000)]
        await ch_executor.insert("events", EVENTS_COLUMNS, rows)
        result = await ch_executor.execute(
            "SELECT event, properties, distinct_id, elements_chain, person_properties, group3_properties,"
            " toString(uuid), timestamp FROM events WHERE team_id = {t:Int64} ORDER BY timestamp",
            {"t": team_id},
        )
        index = {c: n for n, c in enumerate(EVENTS_COLUMNS)}
        expected = [
            (
                r[index["event"]],
                r[index["properties"]],
                r[index["distinct_id"]],
                r[index["elements_chain"]],
                r[index["person_properties"]],
                r[index["group3_properties"]],
                str(r[index["uuid"]]),
                r[index["timestamp"]].strftime("%Y-%m-%d %H:%M:%S.%f"),
            )
            for r in rows
        ]
        assert result.rows == expected

    async def test_100k_rows_is_fast(self, ch_executor):
        team_id = _team()
        rows = [_event_row(team_id, i, "x") for i in range(100_000)]
        started = time.monotonic()
        await ch_executor.insert("events", EVENTS_COLUMNS, rows)
        elapsed = time.monotonic() - started
        result = await ch_executor.execute("SELECT count() FROM events WHERE team_id = {t:Int64}", {"t": team_id})
        assert result.rows == [(100_000,)]
        assert elapsed < 3.0, f"100k rows took {elapsed:.2f}s"

    async def test_bad_column_is_an_error(self, ch_executor):
        with pytest.raises(ClickHouseError) as info:
            await ch_executor.insert("events", ["no_such_column"], [("x",)])
        assert info.value.code is not None

    async def test_identifiers_are_validated(self, ch_executor):
        with pytest.raises(ValueError):
            await ch_executor.insert("events; DROP TABLE x", ["event"], [("x",)])
        with pytest.raises(ValueError):
            await ch_executor.insert("events", ["event`"], [("x",)])


class TestCancel:
    async def test_long_query_is_cancelled_within_a_second(self, ch_executor):
        task = asyncio.create_task(ch_executor.execute(LONG_QUERY, query_id="test-cancel-1"))
        await _wait_running(ch_executor, "test-cancel-1")
        started = time.monotonic()
        assert await ch_executor.cancel("test-cancel-1") is True
        with pytest.raises(ClickHouseCancelled):
            await asyncio.wait_for(task, timeout=5)
        assert time.monotonic() - started < 1.0
        # The connection that ran it is clean and back in the pool.
        assert (await ch_executor.execute("SELECT 42 AS x")).rows == [(42,)]

    async def test_parameterized_query_is_found_cancelled_and_reports_progress(self, ch_executor):
        # chDB shows parameterized queries reformatted, without our leading comment.
        query = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = {p0:UInt64}"
        task = asyncio.create_task(ch_executor.execute(query, {"p0": 1}, query_id="test-cancel-param"))
        await _wait_running(ch_executor, "test-cancel-param")
        progress = await ch_executor.progress("test-cancel-param")
        assert progress is not None
        started = time.monotonic()
        assert await ch_executor.cancel("test-cancel-param") is True
        with pytest.raises(ClickHouseCancelled):
            await asyncio.wait_for(task, timeout=5)
        assert time.monotonic() - started < 1.0

    async def test_cancel_while_waiting_for_a_connection(self, ch_executor):
        if not isinstance(ch_executor, ChdbExecutor):
            print("the HTTP executor does not queue queries; nothing to check")
            return
        busy_ids = [f"test-busy-{i}" for i in range(ch_executor.pool_size)]
        busy = [asyncio.create_task(ch_executor.execute(LONG_QUERY, query_id=q)) for q in busy_ids]
        for q in busy_ids:
            await _wait_running(ch_executor, q)
        queued = asyncio.create_task(ch_executor.execute("SELECT 1", query_id="test-queued-1"))
        await asyncio.sleep(0.05)
        assert await ch_executor.cancel("test-queued-1") is True
        for q in busy_ids:
            assert await ch_executor.cancel(q) is True
        with pytest.raises(ClickHouseCancelled):
            await asyncio.wait_for(queued, timeout=5)
        for task in busy:
            with pytest.raises(ClickHouseCancelled):
                await asyncio.wait_for(task, timeout=5)

    async def test_duplicate_query_id_is_refused(self, ch_executor):
        task = asyncio.create_task(ch_executor.execute(LONG_QUERY, query_id="test-dup-1"))
        try:
            await _wait_running(ch_executor, "test-dup-1")
            with pytest.raises(ClickHouseError) as info:
                await ch_executor.execute("SELECT 1", query_id="test-dup-1")
            assert info.value.code == 216
        finally:
            await ch_executor.cancel("test-dup-1")
            with pytest.raises(ClickHouseCancelled):
                await task

    async def test_unknown_query_id(self, ch_executor):
        assert await ch_executor.cancel("never-ran") is False

    async def test_abandoned_query_is_killed(self, ch_executor):
        task = asyncio.create_task(ch_executor.execute(LONG_QUERY, query_id="test-abandon-1"))
        await _wait_running(ch_executor, "test-abandon-1")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 3
        while await ch_executor.progress("test-abandon-1") is not None:
            assert time.monotonic() < deadline, "abandoned query still running"
            await asyncio.sleep(0.05)

    @pytest.mark.parametrize("bad", ["", "a b", "x*/", "é", "a" * 129])
    async def test_query_id_is_validated(self, ch_executor, bad):
        with pytest.raises(ValueError):
            await ch_executor.execute("SELECT 1", query_id=bad)
        with pytest.raises(ValueError):
            await ch_executor.cancel(bad)


class TestProgress:
    async def test_running_query_reports_rows(self, ch_executor):
        task = asyncio.create_task(ch_executor.execute(LONG_QUERY, query_id="test-progress-1"))
        try:
            progress = await _wait_running(ch_executor, "test-progress-1")
            assert progress.query_id == "test-progress-1"
            assert progress.rows_read > 0 and progress.bytes_read > 0
            assert progress.elapsed > 0
            assert progress.total_rows_approx >= progress.rows_read
        finally:
            await ch_executor.cancel("test-progress-1")
            with pytest.raises(ClickHouseCancelled):
                await task

    async def test_unknown_query(self, ch_executor):
        assert await ch_executor.progress("not-running") is None


class TestLimits:
    async def test_max_execution_time_raises_timeout(self, ch_executor):
        started = time.monotonic()
        with pytest.raises(ClickHouseTimeout) as info:
            await ch_executor.execute(LONG_QUERY, settings=ExecuteSettings(max_execution_time=1))
        assert info.value.code == 159
        assert time.monotonic() - started < 5

    async def test_max_result_rows(self, ch_executor):
        with pytest.raises(ClickHouseError) as info:
            await ch_executor.execute("SELECT number FROM numbers(100)", settings=ExecuteSettings(max_result_rows=10))
        assert info.value.code == 396  # TOO_MANY_ROWS_OR_BYTES

    @pytest.mark.parametrize(
        "limits",
        [
            ExecuteSettings(max_execution_time=-1),
            ExecuteSettings(max_memory_usage=True),
            ExecuteSettings(max_result_rows="10"),  # type: ignore[arg-type]
            ExecuteSettings(extra={"max_threads; DROP": 1}),
            ExecuteSettings(extra={"load_balancing": "random' OR 1"}),
        ],
    )
    async def test_settings_are_validated(self, ch_executor, limits):
        with pytest.raises(ValueError):
            await ch_executor.execute("SELECT 1", settings=limits)


class TestErrors:
    async def test_syntax_error_has_code(self, ch_executor):
        with pytest.raises(ClickHouseError) as info:
            await ch_executor.execute("SELEC 1")
        assert info.value.code == 62
        assert not isinstance(info.value, (ClickHouseTimeout, ClickHouseCancelled))

    async def test_failed_query_leaves_no_output_behind(self, ch_executor):
        # chDB would prepend a failed query's partial output to the next result on that
        # connection; run more failures than there are connections to hit every one.
        for _ in range(8):
            with pytest.raises(ClickHouseError):
                await ch_executor.execute(
                    "SELECT throwIf(number = 5000) FROM numbers(10000) SETTINGS max_block_size = 10"
                )
        for _ in range(8):
            assert (await ch_executor.execute("SELECT 7 AS x")).rows == [(7,)]


class TestConcurrency:
    async def test_short_query_runs_beside_a_long_one(self, ch_executor):
        task = asyncio.create_task(ch_executor.execute(LONG_QUERY, query_id="test-concurrent-1"))
        try:
            await _wait_running(ch_executor, "test-concurrent-1")
            started = time.monotonic()
            results = await asyncio.gather(*(ch_executor.execute("SELECT 1") for _ in range(5)))
            assert all(r.rows == [(1,)] for r in results)
            assert time.monotonic() - started < 2
        finally:
            await ch_executor.cancel("test-concurrent-1")
            with pytest.raises(ClickHouseCancelled):
                await task

    async def test_inserts_do_not_wait_for_busy_query_connections(self, ch_executor):
        """Every query connection runs a long report; a capture-sized insert still lands at once
        on its own connection (and single-threaded, below SMALL_INSERT_ROWS)."""
        ids = [f"test-busy-{uuid.uuid4().hex[:8]}" for _ in range(ch_executor.pool_size)]
        tasks = [asyncio.create_task(ch_executor.execute(LONG_QUERY, query_id=q)) for q in ids]
        try:
            for q in ids:
                await _wait_running(ch_executor, q)
            team_id = _team()
            started = time.monotonic()
            await asyncio.gather(*(ch_executor.insert("events", EVENTS_COLUMNS, [_event_row(team_id, i, f"r{i}")])
                                   for i in range(4)))
            assert time.monotonic() - started < 2
        finally:
            for q in ids:
                await ch_executor.cancel(q)
            for task in tasks:
                with pytest.raises(ClickHouseCancelled):
                    await task
        result = await ch_executor.execute("SELECT count() FROM events WHERE team_id = {t:Int64}", {"t": team_id})
        assert result.rows == [(4,)]

    async def test_engine_threads_run_at_lower_priority(self, ch_executor):
        """chDB work yields the CPU to the event loop (ENGINE_NICE on the executor's threads)."""
        import os
        import threading

        from app.query_engine.executor import chdb as chdb_module

        loop = asyncio.get_running_loop()
        nice = await loop.run_in_executor(ch_executor._threads,
                                          lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert nice == os.getpriority(os.PRIO_PROCESS, 0) + chdb_module.ENGINE_NICE or nice == 19
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != nice  # the loop's thread is not lowered
        # Inserts keep normal priority: capture acknowledgements wait for them.
        insert_nice = await loop.run_in_executor(ch_executor._insert_threads,
                                                 lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert insert_nice == os.getpriority(os.PRIO_PROCESS, 0)

    async def test_ping(self, ch_executor):
        assert await ch_executor.ping() is True


class TestChdbPaths:
    """chDB facts the session fixture depends on (only meaningful on the embedded engine)."""

    async def test_same_path_is_shared_other_path_refused(self, ch_executor, tmp_path):
        if not isinstance(ch_executor, ChdbExecutor):
            print("session executor is not chDB; nothing to check")
            return
        same = ChdbExecutor(ch_executor.path, ch_executor.database, pool_size=1)
        try:
            result = await same.execute("SELECT count() FROM system.tables WHERE database = currentDatabase()")
            assert result.rows[0][0] >= 5
        finally:
            await same.close()
        assert await ch_executor.ping() is True  # closing the second one left ours alone
        other = ChdbExecutor(str(tmp_path / "other"), "tally", pool_size=1)
        with pytest.raises(ClickHouseUnavailable, match="BAD_ARGUMENTS|different path"):
            await other.open()
        await other.close()

    async def test_close_kills_running_queries(self, ch_executor):
        if not isinstance(ch_executor, ChdbExecutor):
            print("session executor is not chDB; nothing to check")
            return
        own = ChdbExecutor(ch_executor.path, ch_executor.database, pool_size=1)
        task = asyncio.create_task(own.execute(LONG_QUERY, query_id="test-close-1"))
        await _wait_running(ch_executor, "test-close-1")
        started = time.monotonic()
        await own.close()
        assert time.monotonic() - started < 2
        with pytest.raises(ClickHouseCancelled):
            await task
        with pytest.raises(ClickHouseUnavailable):
            await own.execute("SELECT 1")


class TestSlotPool:
    """Connections go to waiters in arrival order (app/query_engine/executor/chdb.py `_SlotPool`)."""

    async def test_a_released_slot_goes_to_the_first_waiter_not_a_newcomer(self):
        from app.query_engine.executor.chdb import _SlotPool

        pool = _SlotPool(["s"])  # type: ignore[list-item]
        held = await pool.get()
        order: list[str] = []

        async def take(name: str) -> None:
            slot = await pool.get()
            order.append(name)
            pool.put_nowait(slot)

        first = asyncio.create_task(take("first"))
        second = asyncio.create_task(take("second"))
        await asyncio.sleep(0)  # both are waiting now
        pool.put_nowait(held)
        # A newcomer asking in the same loop iteration must queue behind them (an asyncio.Queue
        # hands it the slot and sends the woken waiter to the back of the line).
        newcomer = asyncio.create_task(take("newcomer"))
        await asyncio.gather(first, second, newcomer)
        assert order == ["first", "second", "newcomer"]

    async def test_a_cancelled_waiter_passes_its_slot_on(self):
        from app.query_engine.executor.chdb import _SlotPool

        pool = _SlotPool(["s"])  # type: ignore[list-item]
        held = await pool.get()
        cancelled = asyncio.create_task(pool.get())
        waiting = asyncio.create_task(pool.get())
        await asyncio.sleep(0)
        pool.put_nowait(held)  # handed to `cancelled`, which is cancelled before it runs
        cancelled.cancel()
        assert await asyncio.wait_for(waiting, 1) == "s"
        assert cancelled.cancelled()

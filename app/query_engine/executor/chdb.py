"""Embedded ClickHouse through chDB (the default backend).

chDB facts this module is built on (measured with chdb 4.4 / chdb-core 26.9):

- One data path per process *at a time*: `chdb.connect(path)` may be called many times for the
  same path, but a different path (or `:memory:`) fails with BAD_ARGUMENTS until every
  connection to the first path is closed. Tests therefore share one executor per session.
- One connection runs one query at a time; queries on different connections run concurrently.
  So: a small pool of connections handed out through an asyncio queue, plus one *control*
  connection kept free for `cancel`/`progress`/`ping`, so they work while the pool is busy.
  Every call runs in our own worker threads (chDB releases the GIL), never on the event loop.
- The `query_id` setting is refused. Each query text starts with `/* tally_query_id:<id> */`
  and `cancel` finds it in `system.processes` by that prefix, then runs
  `KILL QUERY WHERE query_id = … SYNC` (about 0.1 s) from the control connection.
- `USE` and `SET` are per connection, so each connection runs `USE <database>` once.
- A query that fails while producing output (timeout, cancel, result overflow, runtime
  exception) leaves its partial output in the connection's buffer, and the *next* result on
  that connection comes back with it prepended. After every error we run a throwaway
  `SELECT 1` until it comes back clean, and replace the connection if it never does.
- Query parameters go through chDB's `params=` exactly like the HTTP interface's
  `param_<name>`; see `encode_param` for the text format.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Literal, Sequence, TypeVar

from app.query_engine.executor.base import (
    ClickHouseCancelled,
    ClickHouseError,
    ClickHouseUnavailable,
    INSERT_SETTINGS,
    ExecuteSettings,
    QueryProgress,
    QueryResult,
    check_query_id,
    encode_param,
    encode_params,
    encode_rows,
    error_from_message,
    parse_json_compact,
    quote_identifier,
    render_settings_clause,
    settings_dict,
)
from app.query_engine.executor.staging import STAGED_KEYS, StagedTable, StageFile, recover_staged

log = logging.getLogger(__name__)

T = TypeVar("T")

# Which connections a call uses: queries, inserts, or the one kept free for kill/progress/ping.
Lane = Literal["query", "insert", "control"]

# Inserts below this many rows run single-threaded (see `insert`).
SMALL_INSERT_ROWS = 5_000

# Explicit so results parse the same on every engine version (64-bit ints as JSON numbers).
_OUTPUT_SETTINGS: dict[str, int | str] = {"output_format_json_quote_64bit_integers": 0}
_CANCEL_WAIT_SECONDS = 0.5


def query_tag(query_id: str) -> str:
    return f"/* tally_query_id:{check_query_id(query_id)} */"


def _tag_value(query_id: str) -> str:
    return f"tally_query_id:{check_query_id(query_id)}"


def _tag_params(query_id: str) -> dict[str, str]:
    return {"tag": encode_param(query_tag(query_id)), "comment": encode_param(_tag_value(query_id))}


# Finds our query by its leading comment (unparameterized text is shown verbatim) or by its
# log_comment setting (parameterized text is reformatted without comments).
_FIND_TAGGED = "(startsWith(query, {tag:String}) OR Settings['log_comment'] = {comment:String})"


class _Slot:
    """A pooled connection; the holder lets us swap in a fresh connection after a bad error."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn


class _SlotPool:
    """Connections handed out strictly in arrival order. (`asyncio.Queue` lets a newcomer take a
    connection put back for a woken waiter, which then queues again at the back: under load some
    queries waited minutes behind later arrivals.) A released connection goes straight to the first
    waiter."""

    def __init__(self, slots: Sequence[_Slot]) -> None:
        self._free: deque[_Slot] = deque(slots)
        self._waiters: deque[asyncio.Future[_Slot]] = deque()

    async def get(self) -> _Slot:
        if self._free and not self._waiters:
            return self._free.popleft()
        waiter: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.put_nowait(waiter.result())  # handed over as we were cancelled: pass it on
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def put_nowait(self, slot: _Slot) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        self._free.append(slot)


class ChdbExecutor:
    def __init__(self, path: str | os.PathLike[str], database: str, pool_size: int = 3,
                 insert_pool_size: int = 2) -> None:
        quote_identifier(database)
        if pool_size < 1 or insert_pool_size < 1:
            raise ValueError("pool_size and insert_pool_size must be at least 1")
        self.path = str(path)
        self.database = database
        self.pool_size = pool_size
        # Inserts get connections of their own: an acknowledged capture request must not wait
        # behind a slow report holding every query connection.
        self.insert_pool_size = insert_pool_size
        # pools + control + one spare: a thread is never the bottleneck, a connection is.
        self._threads = ThreadPoolExecutor(max_workers=pool_size + 2, thread_name_prefix="chdb",
                                           initializer=_yield_cpu_to_requests)
        # Insert threads run at normal priority: a capture request is acknowledged only when its insert
        # ends. (The engine's own worker threads inherit the nice value of the thread that started
        # them, mostly a query thread; un-nicing them measured no different, see README.)
        self._insert_threads = ThreadPoolExecutor(max_workers=insert_pool_size, thread_name_prefix="chdb-insert")
        self._open_lock = asyncio.Lock()
        self._slots: list[_Slot] = []
        self._pool: _SlotPool | None = None
        self._inserts: _SlotPool | None = None
        self._control: _SlotPool | None = None
        self._closed = False
        self._inflight: set[str] = set()
        self._cancel_requested: set[str] = set()
        self._abandoned: set[str] = set()  # callers gone, queries maybe still running
        self._background: set[asyncio.Task[Any]] = set()
        self._staged: dict[str, StagedTable] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect now (otherwise the first call does): lets startup fail fast."""
        async with self._open_lock:
            if self._closed:
                raise ClickHouseUnavailable("executor is closed")
            if self._pool is not None:
                return
            loop = asyncio.get_running_loop()
            self._slots = await loop.run_in_executor(self._threads, self._connect_all)
            self._pool = _SlotPool(self._slots[:self.pool_size])
            self._inserts = _SlotPool(self._slots[self.pool_size:-1])
            self._control = _SlotPool(self._slots[-1:])

    def _connect_all(self) -> list[_Slot]:
        slots: list[_Slot] = []
        try:
            for _ in range(self.pool_size + self.insert_pool_size + 1):
                slots.append(_Slot(self._connect()))
        except BaseException:
            for slot in slots:
                _close_quietly(slot.conn)
            raise
        return slots

    def _connect(self) -> Any:
        import chdb  # imported lazily: it loads the engine, and HTTP deployments never need it

        os.makedirs(self.path, exist_ok=True)
        try:
            conn = chdb.connect(self.path)
            db = quote_identifier(self.database)
            # The executor owns its database the way the HTTP `database` parameter does:
            # unqualified table names resolve in it.
            conn.query(f"CREATE DATABASE IF NOT EXISTS {db}", "CSV")
            conn.query(f"USE {db}", "CSV")
        except Exception as exc:
            raise ClickHouseUnavailable(f"chDB could not open {self.path}: {exc}") from exc
        return conn

    async def close(self) -> None:
        if self._closed:
            return
        if self._pool is not None:
            for staged in self._staged.values():  # appended rows reach their tables before we go
                try:
                    await staged.close()
                except Exception as exc:  # they stay staged; `recover` moves them at the next start
                    log.error("could not move staged rows into %s: %s", staged.table, exc)
        self._closed = True
        if self._pool is None or self._control is None or self._inserts is None:
            self._threads.shutdown(wait=False)
            self._insert_threads.shutdown(wait=False)
            return
        # Shutting down should not wait for a long report: kill what is still running.
        for query_id in list(self._inflight):
            try:
                await self.cancel(query_id)
            except ClickHouseError:
                pass
        try:
            async with asyncio.timeout(10):
                for _ in range(self.pool_size):
                    await self._pool.get()
                for _ in range(self.insert_pool_size):
                    await self._inserts.get()
                await self._control.get()
        except TimeoutError:
            log.warning("chdb executor closed with queries still running")
        for slot in self._slots:
            _close_quietly(slot.conn)
        self._threads.shutdown(wait=False)
        self._insert_threads.shutdown(wait=False)

    # --- protocol ----------------------------------------------------------------------------

    async def execute(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        *,
        query_id: str | None = None,
        settings: ExecuteSettings | None = None,
    ) -> QueryResult:
        qid = check_query_id(query_id) if query_id is not None else uuid.uuid4().hex
        # chDB rewrites the text of parameterized queries (dropping the leading comment) before it
        # shows them in system.processes; the log_comment setting survives, so it carries the tag too.
        # `qid` matched a strict pattern above, so it is safe inside the quoted setting.
        clause = render_settings_clause({**_OUTPUT_SETTINGS, **settings_dict(settings), "log_comment": _tag_value(qid)})
        body = sql.strip()
        if body.endswith(";"):
            body = body[:-1]
        # The tag must open the text: `cancel`/`progress` match it as a prefix, and a parameter
        # value substituted later in the text can therefore never forge it.
        text = f"{query_tag(qid)} {body}\n{clause}"
        encoded = encode_params(params)
        await self._settle_appends()
        if qid in self._inflight:
            # Same answer as a ClickHouse server gives (QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING).
            raise ClickHouseError(f"a query with id {qid!r} is already running", 216)
        self._inflight.add(qid)
        try:
            return await self._call("query", self._execute_sync, qid, text, encoded, kill_id=qid)
        finally:
            if qid not in self._abandoned:  # else the worker thread's done-callback forgets it
                self._forget(qid)

    async def command(
        self, sql: str, params: dict[str, Any] | None = None, *, use_database: bool = True
    ) -> None:
        # `use_database` needs no handling: the database exists as soon as we are connected.
        await self._settle_appends()
        await self._call("query", self._command_sync, sql, encode_params(params))

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cols = ", ".join(quote_identifier(c) for c in columns)
        await self._insert(f"{quote_identifier(self.database)}.{quote_identifier(table)} ({cols})", rows)

    async def _append_to_stage(self, stage: str, rows: Sequence[Sequence[Any]], file: StageFile) -> None:
        """Rows that hold every column of the stage in its order (its columns were checked): without
        a column list chDB spends ~0.3 ms less per insert. The stage's file is committed, or cut
        back, in the same thread (`staging.StageFile`)."""
        await self._insert(f"{quote_identifier(self.database)}.{quote_identifier(stage)}", rows, file)

    async def _insert(self, target: str, rows: Sequence[Sequence[Any]], stage: StageFile | None = None) -> None:
        if not rows:
            return
        settings = INSERT_SETTINGS
        if len(rows) < SMALL_INSERT_ROWS:
            # Capture-sized inserts: thread fan-out costs more than it saves (~25 % less CPU).
            settings += ", max_threads = 1, max_insert_threads = 1"
        await self._call("insert", self._insert_sync, f"INSERT INTO {target} SETTINGS {settings}", rows, stage)

    async def append(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Durable once it returns; staged (see `staging`) when `table` allows it and the batch is
        capture-sized, so the row reaches `table` within STAGE_SECONDS. Reads through this executor
        see it at once. One executor per data path may append."""
        if not rows:
            return
        if table not in STAGED_KEYS or len(rows) >= SMALL_INSERT_ROWS:
            await self.insert(table, columns, rows)
            return
        staged = self._staged.get(table)
        if staged is None:
            staged = self._staged[table] = StagedTable(self.database, table, columns, run=self._run_insert_lane,
                                                       insert=self._append_to_stage,
                                                       select=self._select_insert_lane)
        elif staged.columns != tuple(columns):
            raise ValueError(f"appends to {table!r} must name the columns {staged.columns}")
        await staged.append(rows)

    async def recover(self) -> None:
        """Move rows a previous process left staged (only the owner of the data path, at startup)."""
        await recover_staged(self.database, run=self._run_insert_lane, select=self._select_insert_lane)

    async def _settle_appends(self) -> None:
        for staged in self._staged.values():
            if staged.dirty:
                try:
                    # Shielded: a cancelled reader must not stop a move between its copy and its emptying.
                    await asyncio.shield(staged.flush())
                except Exception as exc:  # the read goes ahead without them; the mover keeps trying
                    log.error("could not move staged rows into %s before a read: %s", staged.table, exc)

    async def _run_insert_lane(self, sql: str) -> None:
        await self._call("insert", self._command_sync, sql, {})

    async def _select_insert_lane(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        # Stage bookkeeping (system tables) runs on the insert lane: on the query lane the first
        # append waited behind long reports for a connection (~2 s under the load benchmark).
        return (await self._call("insert", self._select_sync, sql, encode_params(params))).rows

    async def cancel(self, query_id: str) -> bool:
        local = query_id in self._inflight
        if local:
            # Checked right before the query starts, for a cancel that beats it to the engine.
            self._cancel_requested.add(query_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CANCEL_WAIT_SECONDS
        while True:
            killed = await self._call("control", self._kill_sync, query_id)
            # A query of ours that is not visible yet is about to start (waiting for a pooled
            # connection or a thread): look again briefly, the flag above covers the rest.
            if killed or not local or query_id not in self._inflight or loop.time() > deadline:
                return killed or local
            await asyncio.sleep(0.02)

    async def progress(self, query_id: str) -> QueryProgress | None:
        result = await self._call(
            "control",
            self._select_sync,
            "SELECT read_rows, read_bytes, elapsed, total_rows_approx FROM system.processes"
            " WHERE " + _FIND_TAGGED + " LIMIT 1",
            _tag_params(query_id),
        )
        if not result.rows:
            return None
        read_rows, read_bytes, elapsed, total = result.rows[0]
        return QueryProgress(query_id, int(read_rows), int(read_bytes), float(elapsed), int(total))

    async def ping(self) -> bool:
        try:
            result = await self._call("control", self._select_sync, "SELECT 1", {})
        except ClickHouseError:
            return False
        return result.rows == [(1,)]

    # --- plumbing ----------------------------------------------------------------------------

    async def _call(
        self,
        lane: Lane,
        fn: Callable[..., T],
        *args: Any,
        kill_id: str | None = None,
    ) -> T:
        # While closing, the control connection still serves the kills of running queries.
        if self._closed and not (lane == "control" and self._pool is not None):
            raise ClickHouseUnavailable("executor is closed")
        if self._pool is None:
            await self.open()
        q = {"query": self._pool, "insert": self._inserts, "control": self._control}[lane]
        assert q is not None
        slot = await q.get()
        loop = asyncio.get_running_loop()
        try:
            fut = loop.run_in_executor(self._insert_threads if lane == "insert" else self._threads, fn, slot, *args)
        except BaseException:
            q.put_nowait(slot)
            raise
        try:
            # shield: a cancelled caller must not hand the connection back while chDB still
            # runs the query on it; the done-callback below returns it when the thread ends.
            result = await asyncio.shield(fut)
        except asyncio.CancelledError:
            if not fut.done():
                fut.add_done_callback(lambda f: (_consume(f), q.put_nowait(slot)))
                if kill_id is not None:
                    # Kill it, and keep it marked cancelled until the thread is done, in case
                    # it has not reached the engine yet.
                    self._abandoned.add(kill_id)
                    self._cancel_requested.add(kill_id)
                    fut.add_done_callback(lambda f: self._forget(kill_id))
                    self._spawn(self._kill_quietly(kill_id))
                raise
            q.put_nowait(slot)
            raise
        except BaseException:
            q.put_nowait(slot)
            raise
        q.put_nowait(slot)
        return result

    def _forget(self, query_id: str) -> None:
        self._inflight.discard(query_id)
        self._cancel_requested.discard(query_id)
        self._abandoned.discard(query_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _kill_quietly(self, query_id: str) -> None:
        try:
            await self.cancel(query_id)
        except Exception:  # best effort: the caller is already gone
            log.warning("could not kill abandoned chDB query %s", query_id, exc_info=True)

    # The *_sync methods run in worker threads with exclusive use of `slot`.

    def _execute_sync(self, slot: _Slot, qid: str, text: str, params: dict[str, str]) -> QueryResult:
        if qid in self._cancel_requested:
            raise ClickHouseCancelled(f"query {qid} was cancelled before it started", 394)
        return self._select_sync(slot, text, params)

    def _select_sync(self, slot: _Slot, text: str, params: dict[str, str]) -> QueryResult:
        try:
            raw = slot.conn.query(text, "JSONCompact", params=params).bytes()
        except Exception as exc:
            self._drain(slot)
            raise error_from_message(str(exc)) from None
        return parse_json_compact(raw)

    def _command_sync(self, slot: _Slot, sql: str, params: dict[str, str]) -> None:
        try:
            slot.conn.query(sql, "CSV", params=params)
        except Exception as exc:
            self._drain(slot)
            raise error_from_message(str(exc)) from None

    def _insert_sync(self, slot: _Slot, sql: str, rows: Sequence[Sequence[Any]], stage: StageFile | None) -> None:
        body = encode_rows(rows)  # in the thread: 100k rows is tens of ms of CPU
        if stage is None:
            self._write_sync(slot, sql, body)
            return
        with stage.lock:
            try:
                self._write_sync(slot, sql, body)
                stage.commit()
            except BaseException:
                try:
                    stage.rollback()
                except OSError as exc:  # the stage stays dirty; a restart's recovery cuts it back
                    log.error("could not cut a failed append out of %s: %s", stage.data_path, exc)
                raise

    def _write_sync(self, slot: _Slot, sql: str, body: bytes) -> None:
        inserter = None
        try:
            inserter = slot.conn.send_insert(sql, "JSONCompactEachRow")
            inserter.append(body)
            inserter.finish()
        except Exception as exc:
            if inserter is not None:
                try:
                    inserter.cancel()
                except Exception:
                    pass
            self._drain(slot)
            raise error_from_message(str(exc)) from None

    def _kill_sync(self, slot: _Slot, query_id: str) -> bool:
        found = self._select_sync(
            slot, "SELECT query_id FROM system.processes WHERE " + _FIND_TAGGED, _tag_params(query_id)
        )
        for (engine_query_id,) in found.rows:
            self._command_sync(
                slot, "KILL QUERY WHERE query_id = {qid:String} SYNC", {"qid": encode_param(engine_query_id)}
            )
        return bool(found.rows)

    def _drain(self, slot: _Slot) -> None:
        """Flush output a failed query left behind (see module docstring)."""
        for _ in range(3):
            try:
                if slot.conn.query("SELECT 1", "CSV").bytes() == b"1\n":
                    return
            except Exception:
                pass
        log.warning("replacing a chDB connection that kept returning stale output")
        _close_quietly(slot.conn)
        slot.conn = self._connect()


# Nice value of the threads that run chDB. The engine's own worker threads are started from
# them and inherit it, so on a busy machine a report yields the CPU to the event loop serving
# cached reads and acknowledgements, and still uses every idle cycle.
ENGINE_NICE = 10


def _yield_cpu_to_requests() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENGINE_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass


def _consume(fut: asyncio.Future[Any]) -> None:
    # Mark the abandoned result as retrieved so asyncio does not log it as lost.
    if not fut.cancelled():
        fut.exception()

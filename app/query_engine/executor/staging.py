"""Staged appends for the embedded engine: small durable inserts without a MergeTree part each.

Every insert into a MergeTree table writes a new part, and the engine later merges the parts
again and again. Under capture load (a few hundred rows per insert) that fixed work dominated:
~8 µs of CPU per row to write the part and ~12–20 µs more to merge it (benchmarks/RESULTS.md,
ingestion). So an append goes to one of two `File(Native)` tables next to its target
(`<table>__staged_0` / `_1`, the same columns), and a mover copies everything staged into the
target in one `INSERT … SELECT` at most STAGE_SECONDS later, then empties the stage:

- An appended row is durable once the append returns: its bytes are in the stage's file, and the
  end of the last complete append is recorded next to it (`StageFile`, `<data file>.committed`).
  A `File` table has no rollback of its own, so a failed append is cut back to that size, and so
  is a tail torn by a crash before the stage is read at startup (`recover_staged`).
  (`StripeLog` stages, used before, cost ~1 ms more CPU per append and fsync their size file
  twice per insert; nothing else here is fsynced either: a crash of the process loses nothing
  acknowledged, a crash of the machine may.)
- Appends go to the *active* stage. A move makes the other stage active first and waits until
  the appends still writing to the old one are done, so a stage is never emptied under a writer.
- Reads see staged rows at once: the executor moves whatever is staged before it runs any
  query or command (`flush`), so only a reader bypassing the executor can see the delay.
- A move that failed, or a stage found at startup (`recover`: the process died between the copy
  and the emptying, or before the copy), is copied again without the rows whose `key` is already
  in the target, so no row is ever stored twice.

The engine calls (statements on the executor's insert lane) are passed in; this class holds the
bookkeeping, the SQL and the stage files. Table and column names come from the catalog and are
quoted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from app.query_engine.executor.base import quote_identifier

log = logging.getLogger(__name__)

# How long an appended row may wait for its move (the spec allows about a second). Each move
# writes one part: half a second of capture makes parts large enough that merging them costs
# little, and small enough to stay compact (ddl.EVENTS_MIN_BYTES_FOR_WIDE_PART).
STAGE_SECONDS = 0.5
# Tables whose appends are staged, and the columns that identify a row (for a repeated move).
STAGED_KEYS: dict[str, tuple[str, ...]] = {"events": ("team_id", "uuid")}

STAGE_ENGINE = "File(Native)"
COMMITTED_SUFFIX = ".committed"

Run = Callable[[str], Awaitable[None]]
# (stage, rows holding every column in order, its file): the executor writes the rows and calls
# `file.commit()` in its insert thread holding `file.lock`, or `file.rollback()` if anything failed.
Insert = Callable[[str, Sequence[Sequence[Any]], "StageFile"], Awaitable[None]]
Select = Callable[[str, dict[str, Any]], Awaitable[list[tuple[Any, ...]]]]


def stage_name(table: str, index: int) -> str:
    return f"{table}__staged_{index}"


def _qualified(database: str, table: str) -> str:
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def _move_sql(database: str, table: str, stage: str, columns: Sequence[str], *, skip_present: bool) -> str:
    cols = ", ".join(quote_identifier(c) for c in columns)
    target, source = _qualified(database, table), _qualified(database, stage)
    sql = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {source}"
    if skip_present:
        key = ", ".join(quote_identifier(c) for c in STAGED_KEYS[table])
        sql += (f" WHERE ({key}) NOT IN (SELECT {key} FROM {target}"
                f" WHERE ({key}) IN (SELECT {key} FROM {source}))")
    return sql


class StageFile:
    """A stage's data file and the end of its last complete append, kept as 8 bytes in
    `<data file>.committed`. The executor appends, commits and rolls back holding `lock` (in its
    insert thread, so the next append starts without a trip through the event loop); the engine
    serialises writes to a `File` table anyway, and under the lock the size read after an append
    is exactly where that append ended."""

    def __init__(self, data_path: str) -> None:
        self.data_path = data_path
        self.committed_path = data_path + COMMITTED_SUFFIX
        self.lock = threading.Lock()
        self.committed = 0
        self._fd: int | None = None

    def open(self) -> None:
        """Create the data file (an empty one reads as no rows) and start from its committed size."""
        with self.lock:
            if self._fd is None:
                repair_stage_file(self.data_path)
                self.committed = _read_committed(self.committed_path)
                self._fd = os.open(self.committed_path, os.O_RDWR | os.O_CREAT, 0o644)

    def commit(self) -> None:
        """After a complete append (holding `lock`): its end is what a restart keeps."""
        size = os.stat(self.data_path).st_size
        self._write(size)

    def rollback(self) -> None:
        """After a failed append (holding `lock`): drop whatever it left after the committed end."""
        os.truncate(self.data_path, self.committed)

    def emptied(self) -> None:
        """After the stage was emptied by a move."""
        with self.lock:
            self._write(0)

    def close(self) -> None:
        with self.lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _write(self, size: int) -> None:
        assert self._fd is not None, "stage file not open"
        os.pwrite(self._fd, size.to_bytes(8, "little"), 0)
        self.committed = size


def _read_committed(path: str) -> int:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
    except FileNotFoundError:
        return 0
    return int.from_bytes(raw, "little") if len(raw) == 8 else 0


def repair_stage_file(data_path: str) -> int:
    """Cut a stage's data file back to its committed end (creating it empty if missing); returns
    the bytes cut. Only what no append acknowledged lies beyond it: a failed append, or one torn
    by a crash. A missing size file means no append was ever acknowledged."""
    committed = _read_committed(data_path + COMMITTED_SUFFIX)
    with open(data_path, "ab") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size <= committed:  # shorter: emptied by a move that died before recording it
            return 0
        fh.truncate(committed)
    return size - committed


@dataclass
class _Stage:
    name: str
    file: StageFile | None = None
    writing: int = 0  # appends in progress
    dirty: bool = False  # may hold rows not yet in the target
    suspect: bool = False  # a move of it failed: some rows may be in the target already
    drained: asyncio.Event = field(default_factory=asyncio.Event)


class StagedTable:
    def __init__(self, database: str, table: str, columns: Sequence[str], *, run: Run, insert: Insert,
                 select: Select) -> None:
        if table not in STAGED_KEYS:
            raise ValueError(f"{table!r} is not a staged table")
        self.database, self.table, self.columns = database, table, tuple(columns)
        self._run, self._insert, self._select = run, insert, select
        self._stages = (_Stage(stage_name(table, 0)), _Stage(stage_name(table, 1)))
        self._active = 0
        self._created = False
        self._create_lock = asyncio.Lock()
        self._move_lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._mover: asyncio.Task[None] | None = None

    @property
    def dirty(self) -> bool:
        return self._stages[0].dirty or self._stages[1].dirty

    async def append(self, rows: Sequence[Sequence[Any]]) -> None:
        if not self._created:
            await self._create()
        stage = self._stages[self._active]
        stage.writing += 1
        stage.dirty = True  # even a failed append may leave rows (if cutting them back fails too)
        assert stage.file is not None
        try:
            await self._insert(stage.name, rows, stage.file)
        finally:
            stage.writing -= 1
            if not stage.writing:
                stage.drained.set()
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(STAGE_SECONDS, self._start_move)

    async def flush(self) -> None:
        """Move everything staged so far into the target (both stages, the inactive one first)."""
        async with self._move_lock:
            for index in (1 - self._active, self._active):
                if self._stages[index].dirty:
                    await self._move(index)

    async def _create(self) -> None:
        async with self._create_lock:
            if self._created:
                return
            cols = ", ".join(quote_identifier(c) for c in self.columns)
            for stage in self._stages:
                # Same column types as the target's; no MATERIALIZED columns (computed by the move).
                await self._run(f"CREATE TABLE IF NOT EXISTS {_qualified(self.database, stage.name)}"
                                f" ENGINE = {STAGE_ENGINE} AS SELECT {cols} FROM {_qualified(self.database, self.table)}"
                                " WHERE 0")
                # Appends name no columns, so a stage must hold exactly ours, in order, and be a `File`
                # table with a committed size. One left by another version is refused until the
                # startup recovery (`recover`) has moved and dropped it.
                engine, path = await _describe(self._select, self.database, stage.name)
                if engine != "File":
                    raise RuntimeError(f"stage table {stage.name} is a {engine} table, not a File table;"
                                       " it is moved by the startup recovery (`recover`)")
                found = await _columns(self._select, self.database, stage.name)
                if found != self.columns:
                    raise RuntimeError(f"stage table {stage.name} has the columns {found}, not {self.columns};"
                                       " it is moved by the startup recovery (`recover`)")
                stage.file = StageFile(path)
                await asyncio.to_thread(stage.file.open)
            self._created = True

    async def _move(self, index: int) -> None:
        stage = self._stages[index]
        if index == self._active:
            self._active = 1 - index
        while stage.writing:
            stage.drained.clear()
            await stage.drained.wait()
        try:
            await self._run(_move_sql(self.database, self.table, stage.name, self.columns, skip_present=stage.suspect))
            stage.suspect = True  # copied: until it is emptied, a repeat must skip what is there
            await self._run(f"TRUNCATE TABLE {_qualified(self.database, stage.name)}")
            assert stage.file is not None
            stage.file.emptied()
        except BaseException:
            stage.suspect = True
            raise
        stage.dirty = stage.suspect = False

    def _start_move(self) -> None:
        self._timer = None
        if self._mover is None or self._mover.done():
            self._mover = asyncio.get_running_loop().create_task(self._scheduled_move())

    async def _scheduled_move(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # the rows stay staged; the next append or read tries again
            log.error("moving staged rows into %s failed: %s", self.table, exc)
            if self._timer is None and self.dirty:
                self._timer = asyncio.get_running_loop().call_later(STAGE_SECONDS, self._start_move)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._mover is not None:
            await asyncio.gather(self._mover, return_exceptions=True)
        try:
            await self.flush()
        finally:
            for stage in self._stages:
                if stage.file is not None:
                    stage.file.close()


async def _columns(select: Select, database: str, table: str) -> tuple[str, ...]:
    rows = await select("SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}"
                        " ORDER BY position", {"db": database, "t": table})
    return tuple(name for (name,) in rows)


async def _describe(select: Select, database: str, table: str) -> tuple[str, str]:
    """A table's engine and its first data path ('' if it has none)."""
    rows = await select("SELECT engine, data_paths FROM system.tables WHERE database = {db:String}"
                        " AND name = {t:String}", {"db": database, "t": table})
    if not rows:
        raise RuntimeError(f"stage table {table} does not exist")
    engine, paths = rows[0]
    return engine, (paths[0] if paths else "")


async def recover_staged(database: str, *, run: Run, select: Select) -> int:
    """Copy what stages left by an earlier process hold into their targets (skipping rows already
    there, after cutting a torn tail back to the last acknowledged append), then drop them. Older
    versions' `StripeLog` stages are recovered the same way. Returns the number of stages recovered."""
    rows = await select(
        "SELECT name, engine, data_paths FROM system.tables WHERE database = {db:String}"
        " AND engine IN ('File', 'StripeLog') AND match(name, '^[A-Za-z0-9_]+__staged_[01]$') ORDER BY name",
        {"db": database})
    recovered = 0
    for name, engine, paths in rows:
        table = name.rsplit("__staged_", 1)[0]
        if table not in STAGED_KEYS:
            continue
        path = paths[0] if engine == "File" and paths else None
        if path is not None:
            cut = await asyncio.to_thread(repair_stage_file, path)
            if cut:
                log.warning("cut %d bytes no append acknowledged from the end of stage %s", cut, name)
        columns = await _columns(select, database, name)
        if columns:
            await run(_move_sql(database, table, name, columns, skip_present=True))
        await run(f"DROP TABLE {_qualified(database, name)}")
        if path is not None:
            try:
                os.remove(path + COMMITTED_SUFFIX)
            except FileNotFoundError:
                pass
        recovered += 1
    if recovered:
        log.warning("recovered %d staged table(s) left by an earlier process", recovered)
    return recovered

"""Staged appends for the embedded engine: small durable inserts without a MergeTree part each.

Every insert into a MergeTree table writes a new part, and the engine later merges the parts
again and again. Under capture load (a few hundred rows per insert) that fixed work dominated:
~8 µs of CPU per row to write the part and ~12–20 µs more to merge it, against ~3.5 µs per row
for an append to a `StripeLog` table (benchmarks/RESULTS.md, ingestion). So an append goes to one
of two `StripeLog` tables next to its target (`<table>__staged_0` / `_1`, the same columns),
and a mover copies everything staged into the target in one `INSERT … SELECT` at most
STAGE_SECONDS later, then empties the stage:

- An appended row is durable once the append returns: the stage is an on-disk table, and a
  `StripeLog` file torn by a crash is cut back to its last complete insert when it is opened.
- Appends go to the *active* stage. A move makes the other stage active first and waits until
  the appends still writing to the old one are done, so a stage is never emptied under a writer.
- Reads see staged rows at once: the executor moves whatever is staged before it runs any
  query or command (`flush`), so only a reader bypassing the executor can see the delay.
- A move that failed, or a stage found at startup (`recover`: the process died between the copy
  and the emptying, or before the copy), is copied again without the rows whose `key` is already
  in the target, so no row is ever stored twice.

The engine calls (statements on the executor's insert lane) are passed in; this class holds the
bookkeeping and the SQL. Table and column names come from the catalog and are quoted.
"""

from __future__ import annotations

import asyncio
import logging
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

Run = Callable[[str], Awaitable[None]]
Insert = Callable[[str, Sequence[Sequence[Any]]], Awaitable[None]]  # rows holding every column, in order
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


@dataclass
class _Stage:
    name: str
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
        stage.dirty = True  # even a failed append may have left rows (see `flush`)
        try:
            await self._insert(stage.name, rows)
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
                await self._run(f"CREATE TABLE IF NOT EXISTS {_qualified(self.database, stage.name)} ENGINE = StripeLog"
                                f" AS SELECT {cols} FROM {_qualified(self.database, self.table)} WHERE 0")
                # Appends name no columns, so a stage must hold exactly ours, in order. One left with
                # other columns (by a version whose stages `recover` did not move) is refused.
                found = await _columns(self._select, self.database, stage.name)
                if found != self.columns:
                    raise RuntimeError(f"stage table {stage.name} has the columns {found}, not {self.columns};"
                                       " it is moved by the startup recovery (`recover`)")
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
        await self.flush()


async def _columns(select: Select, database: str, table: str) -> tuple[str, ...]:
    rows = await select("SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}"
                        " ORDER BY position", {"db": database, "t": table})
    return tuple(name for (name,) in rows)


async def recover_staged(database: str, *, run: Run, select: Select) -> int:
    """Copy what stages left by an earlier process hold into their targets (skipping rows already
    there), then drop them. Returns the number of stages recovered."""
    rows = await select(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine = 'StripeLog'"
        " AND match(name, '^[A-Za-z0-9_]+__staged_[01]$') ORDER BY name", {"db": database})
    recovered = 0
    for (name,) in rows:
        table = name.rsplit("__staged_", 1)[0]
        if table not in STAGED_KEYS:
            continue
        columns = await _columns(select, database, name)
        if columns:
            await run(_move_sql(database, table, name, columns, skip_present=True))
        await run(f"DROP TABLE {_qualified(database, name)}")
        recovered += 1
    if recovered:
        log.warning("recovered %d staged table(s) left by an earlier process", recovered)
    return recovered

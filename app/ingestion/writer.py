"""The micro-batching writer: every capture request hands its events to `IngestionWriter.submit`
and waits; one background task takes everything pending, deduplicates, runs person processing,
writes PostgreSQL and ClickHouse, and only then resolves the requests' futures. A 200 therefore
always means "in ClickHouse", and concurrent requests share one insert.

Pipeline: batches are prepared one at a time (dedup claims, person processing, row building, in
arrival order); up to MAX_INFLIGHT prepared batches are being written at once. Their PostgreSQL
transactions run strictly in order (person rows are written as full state, so order is what
matters); their ClickHouse inserts may overlap. A failed batch fails only its own requests (the
clients retry), releases its dedup claims and drops the in-process person view, which is then
reloaded from PostgreSQL. A batch's Redis dedup claims run while it is processed; in the rare
batch where they find a duplicate, the view is rebuilt from PostgreSQL (once the batches before it
are there) and the batch processed again without it.

Several processes may ingest for the same environment: PostgreSQL applies person/group changes only
where the stored version is still the one the batch started from (see `store.persist_changes`). A
batch that loses such a race wrote nothing; it is put back in the queue in its original order and
prepared again from PostgreSQL (at most MAX_ATTEMPTS times, then its requests get a 503). Before
each preparation the view drops what other processes changed (`sync.ViewSync`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid as uuidlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import clock
from app.ingestion import metrics
from app.ingestion.dedup import Deduplicator
from app.ingestion.definitions import DefinitionsTracker, PendingDefinitions, persist_definitions
from app.ingestion.events import Event
from app.ingestion.persons import Changes, PersonProcessor, needs_merge
from app.ingestion.rows import EVENT_COLUMNS, event_row
from app.ingestion.store import PersonConflict, PostgresLoader, clickhouse_rows, is_retryable, persist_changes
from app.ingestion.sync import ViewSync
from app.query_engine.executor.base import ClickHouseExecutor

log = logging.getLogger("app.ingestion")

MAX_BATCH_EVENTS = 50_000
MAX_PENDING_EVENTS = 1_000_000
MAX_INFLIGHT = 2
# Each ClickHouse write costs a fixed ~2 ms of CPU (chDB's per-query work) on top of its rows, so
# fewer, larger writes are what throughput needs (benchmarks/RESULTS.md):
# - a second batch is written alongside a running one only once it has CONCURRENT_MIN_EVENTS;
#   smaller ones gather until the running write ends (their latency grows by at most one write);
# - an idle writer lets submissions that arrive together gather: it starts a batch when none came
#   for LINGER_SECONDS, or MAX_LINGER_SECONDS after it woke.
CONCURRENT_MIN_EVENTS = 400
LINGER_SECONDS = 0.001
MAX_LINGER_SECONDS = 0.005
RECENT_UUIDS = 1_000_000
# A batch that loses a compare-and-set race with another process is prepared again, after a short
# random pause (so two processes contending for the same persons fall out of step), at most this many times.
MAX_ATTEMPTS = 10
RETRY_PAUSE_SECONDS = 0.002

Key = tuple[int, uuidlib.UUID]


def _recent_key(key: Key) -> int:
    """The recent-uuid set's entry for a key: one int, which the garbage collector does not track.
    A million (team, UUID) tuples made every full collection a ~200 ms pause of the event loop."""
    return key[0] << 128 | key[1].int


class WriterUnavailable(Exception):
    pass


class _Retry(Exception):
    """write_direct: the batch lost a compare-and-set race and should be prepared again."""


@dataclass
class Submission:
    team_id: int
    events: list[Event]
    historical: bool
    future: asyncio.Future[list[bool]]
    seq: int = 0
    attempts: int = 0


@dataclass
class Prepared:
    submissions: list[Submission]
    results: list[list[bool]]  # per submission, per event: True = written now, False = duplicate
    changes: Changes
    definitions: PendingDefinitions
    event_rows: list[tuple[Any, ...]]
    fresh: list[Key]
    claimed: list[Key]
    # `IngestionWriter._pg_failures` when preparation started: if an earlier batch fails to reach
    # PostgreSQL after that, this batch was built on state that will never exist and is redone.
    pg_failures: int = 0


class IngestionWriter:
    def __init__(self, clickhouse: ClickHouseExecutor, sessionmaker: async_sessionmaker[AsyncSession], *,
                 redis: object | None = None, dedup_lookup: bool = True) -> None:
        self.clickhouse = clickhouse
        self.sessionmaker = sessionmaker
        self.dedup = Deduplicator(clickhouse, redis) if dedup_lookup else None
        self.persons = PersonProcessor(PostgresLoader(sessionmaker))
        self.sync = ViewSync(redis, self.persons)
        self._seq = 0
        self.definitions = DefinitionsTracker()
        self._pending: list[Submission] = []
        self._pending_events = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._inflight: set[asyncio.Task[bool]] = set()
        self._pg_turn: asyncio.Future[None] | None = None
        self._stale = False
        self._pg_failures = 0
        self._tasks: set[asyncio.Task[Any]] = set()  # after-acknowledgement work (publishing person changes)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ingestion-writer")

    async def stop(self) -> None:
        """Write everything already accepted, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- API -----------------------------------------------------------------------------------

    async def submit(self, team_id: int, events: list[Event], *, historical: bool = False) -> list[bool]:
        """Resolve once the events are durably written: per event True (stored) or False (duplicate)."""
        if not events:
            return []
        if self._stopping or self._task is None:
            raise WriterUnavailable("the ingestion writer is not running")
        if self._pending_events + len(events) > MAX_PENDING_EVENTS:
            raise WriterUnavailable("the ingestion queue is full")
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._seq += 1
        self._pending.append(Submission(team_id, events, historical, future, self._seq))
        self._pending_events += len(events)
        self._wake.set()
        return await asyncio.shield(future)

    async def write_direct(self, team_id: int, events: list[Event], *, historical: bool = False) -> None:
        """Bulk path (demo data): the same preparation and writes, without the queue."""
        sub = Submission(team_id, events, historical, asyncio.get_running_loop().create_future())
        for _ in range(MAX_ATTEMPTS):
            if await self._commit(await self._prepare([sub]), requeue=False):
                return
            if not isinstance(sub.future.exception() if sub.future.done() else None, _Retry):
                break
            sub.future = asyncio.get_running_loop().create_future()
        raise WriterUnavailable("writing the batch failed")

    # --- the loop ------------------------------------------------------------------------------

    def _take(self) -> list[Submission]:
        taken, count = [], 0
        while self._pending and (not taken or count + len(self._pending[0].events) <= MAX_BATCH_EVENTS):
            sub = self._pending.pop(0)
            taken.append(sub)
            count += len(sub.events)
        self._pending_events -= count
        return taken

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._stopping:
                    if not self._inflight:
                        break
                    # A batch still being written may come back (requeued after a lost race).
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self._inflight) >= MAX_INFLIGHT:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            if not self._stopping and self._pending_events < CONCURRENT_MIN_EVENTS:
                if self._inflight:
                    await asyncio.wait(self._inflight, timeout=LINGER_SECONDS, return_when=asyncio.FIRST_COMPLETED)
                    if self._inflight:
                        continue
                await self._linger()
            batch = self._take()
            try:
                prepared = await self._prepare(batch)
            except Exception as exc:
                log.exception("preparing an ingestion batch failed")
                self._fail(batch, exc)
                continue
            task = asyncio.create_task(self._commit(prepared))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        if self._inflight:
            await asyncio.wait(self._inflight)

    async def _linger(self) -> None:
        """Let submissions that arrive together (in the same few milliseconds) share one batch."""
        if LINGER_SECONDS <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_LINGER_SECONDS
        seen = self._seq
        while not self._stopping and self._pending_events < CONCURRENT_MIN_EVENTS and loop.time() < deadline:
            await asyncio.sleep(LINGER_SECONDS)
            if self._seq == seen:
                return
            seen = self._seq

    def _fail(self, batch: list[Submission], exc: BaseException) -> None:
        # The views are dropped before the next preparation, never during one (a batch being
        # prepared must keep the ids it prefetched).
        self._stale = True
        for sub in batch:
            if not sub.future.done():
                sub.future.set_exception(WriterUnavailable(str(exc)[:300]))

    # --- stages --------------------------------------------------------------------------------

    async def _prepare(self, batch: list[Submission]) -> Prepared:
        if self._stale:
            self._stale = False
            self.persons.forget()
        pg_failures = self._pg_failures
        now = clock.now()
        # Two Redis round trips: other processes' person changes, which the view must reflect
        # before any event is processed, and the dedup claims, which are awaited only after the
        # batch was processed on the assumption that Redis knows of no duplicate in it. (The claim
        # call was most of a batch's preparation time; duplicates it finds are rare.)
        refresh = asyncio.ensure_future(self.sync.refresh())
        known, candidates = self._known_duplicates(batch)
        claims = asyncio.ensure_future(self._claim(candidates))
        try:
            await refresh
            built = await self._build(batch, known, now)
        except BaseException:
            self._background(self._release_when_claimed(claims))
            raise
        duplicates, claimed = await claims
        if duplicates:
            # Resends another process (or an earlier run) wrote: this pass applied their person
            # changes to the view. Rebuild it from PostgreSQL once the batches before this one are
            # there, and process the batch again without them.
            metrics.incr("capture_batches_reprocessed_total")
            try:
                if self._pg_turn is not None:
                    await asyncio.shield(self._pg_turn)
                self.persons.forget()
                pg_failures = self._pg_failures  # the view now reflects PostgreSQL alone
                built = await self._build(batch, known | duplicates, now)
            except BaseException:
                self._background(self._release(claimed))
                raise
        changes, pending, rows, results, fresh = built
        recent = self._recent
        for key in fresh:
            recent[_recent_key(key)] = None
        while len(recent) > RECENT_UUIDS:
            recent.popitem(last=False)
        return Prepared(batch, results, changes, pending, rows, fresh, claimed, pg_failures)

    async def _build(self, batch: list[Submission], duplicates: set[Key],
                     now: datetime) -> tuple[Changes, PendingDefinitions, list[tuple[Any, ...]], list[list[bool]], list[Key]]:
        """Person processing, definitions and event rows for every event not in `duplicates`."""
        duplicates = set(duplicates)  # grows with copies inside the batch
        now_s = now.timestamp()
        changes, pending = Changes(), PendingDefinitions()
        rows: list[tuple[Any, ...]] = []
        results: list[list[bool]] = []
        fresh: list[Key] = []
        by_team: dict[int, list[Event]] = {}
        for sub in batch:
            by_team.setdefault(sub.team_id, []).extend(sub.events)
        for team_id, events in by_team.items():
            await self.persons.prefetch(team_id, events)
        persons, definitions = self.persons, self.definitions
        for sub in batch:
            flags = []
            team_id = sub.team_id
            for ev in sub.events:
                key = (team_id, ev.uuid)
                if key in duplicates:
                    flags.append(False)
                    continue
                duplicates.add(key)  # a second copy inside the same batch
                fresh.append(key)
                if needs_merge(ev):
                    await persons.merge(team_id, ev, changes)
                person = persons.process(team_id, ev, changes)
                definitions.collect(team_id, ev, pending, now_s, group_type_index=(
                    persons.group_type_index(team_id, ev) if ev.event == "$groupidentify" else None))
                rows.append(event_row(team_id, ev, person, now, sub.historical))
                flags.append(True)
            results.append(flags)
        return changes, pending, rows, results, fresh

    def _known_duplicates(self, batch: list[Submission]) -> tuple[set[Key], list[tuple[Key, str, str, Any]]]:
        """Keys this process wrote recently, and the dedup candidates for the rest."""
        found: set[Key] = set()
        candidates = []
        recent, with_claims = self._recent, self.dedup is not None
        for sub in batch:
            for ev in sub.events:
                key = (sub.team_id, ev.uuid)
                if _recent_key(key) in recent:
                    found.add(key)
                elif with_claims:
                    candidates.append((key, ev.event, ev.distinct_id, ev.timestamp))
        return found, candidates

    async def _claim(self, candidates: list[tuple[Key, str, str, Any]]) -> tuple[set[Key], list[Key]]:
        if not candidates:
            return set(), []
        assert self.dedup is not None
        return await self.dedup.claim(candidates)

    async def _release(self, claimed: list[Key]) -> None:
        if self.dedup is not None:
            await self.dedup.release(claimed)

    async def _release_when_claimed(self, claims: asyncio.Future[tuple[set[Key], list[Key]]]) -> None:
        """A batch whose preparation failed gives back the claims its (still running) call makes."""
        try:
            _, claimed = await claims
        except Exception:  # nothing was claimed
            return
        await self._release(claimed)

    def _requeue(self, batch: list[Submission], exc: PersonConflict) -> None:
        """Prepare these submissions again (in their original order) from fresh PostgreSQL state."""
        self._stale = True
        again = []
        for sub in batch:
            sub.attempts += 1
            if sub.attempts >= MAX_ATTEMPTS:
                if not sub.future.done():
                    sub.future.set_exception(WriterUnavailable(f"person state kept changing: {exc}"))
            else:
                again.append(sub)
        if again:
            self._pending = sorted(again + self._pending, key=lambda sub: sub.seq)
            self._pending_events += sum(len(sub.events) for sub in again)
            self._wake.set()

    async def _commit(self, prepared: Prepared, *, requeue: bool = True) -> bool:
        """Write one prepared batch; False (its futures failed or requeued) when anything went wrong."""
        previous_turn = self._pg_turn
        my_turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pg_turn = my_turn
        pg_done = False
        try:
            try:
                if previous_turn is not None:
                    await asyncio.shield(previous_turn)
                if prepared.pg_failures != self._pg_failures:
                    # An earlier batch, whose person changes this one saw, never reached PostgreSQL.
                    pg_done = True  # nothing of ours was tried: later batches need not be redone
                    raise PersonConflict("an earlier batch it built on was not written")
                if prepared.changes or prepared.definitions:
                    try:
                        async with self.sessionmaker() as session:
                            await persist_changes(session, prepared.changes)
                            await persist_definitions(session, prepared.definitions)
                            await session.commit()
                    except Exception as exc:
                        if is_retryable(exc):  # a deadlock or serialization failure: a lost race too
                            raise PersonConflict(str(exc).splitlines()[0]) from exc
                        raise
                    # Tell the other processes, off this batch's critical path.
                    self._background(self.sync.publish(prepared.changes))
                pg_done = True
            finally:
                if not pg_done:
                    # Batches prepared after this one saw its uncommitted person state.
                    self._pg_failures += 1
                my_turn.set_result(None)
            replicas = clickhouse_rows(prepared.changes)
            if replicas:
                outcomes = await asyncio.gather(*(self.clickhouse.insert(table, columns, rows)
                                                  for table, (columns, rows) in replicas.items()),
                                                return_exceptions=True)
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome
            # Events last: a visible event always has its person rows.
            await self.clickhouse.append("events", EVENT_COLUMNS, prepared.event_rows)
        except PersonConflict as exc:
            # Nothing was written (the transaction rolled back before any ClickHouse insert).
            for key in prepared.fresh:
                self._recent.pop(_recent_key(key), None)
            await self._release(prepared.claimed)
            metrics.incr("capture_batches_conflicted_total")
            log.info("ingestion batch lost a person update race, preparing it again: %s", exc)
            if requeue:
                attempts = max(sub.attempts for sub in prepared.submissions)
                await asyncio.sleep(random.uniform(0, RETRY_PAUSE_SECONDS * 2 ** min(attempts, 4)))
                self._requeue(prepared.submissions, exc)
            else:
                self._stale = True
                for sub in prepared.submissions:
                    sub.future.set_exception(_Retry(str(exc)))
                    sub.future.exception()  # retrieved: write_direct looks at it
            return False
        except Exception as exc:
            for key in prepared.fresh:
                self._recent.pop(_recent_key(key), None)
            await self._release(prepared.claimed)
            metrics.incr("capture_batches_failed_total")
            log.error("ingestion batch failed: %s", exc)
            self._fail(prepared.submissions, exc)
            return False
        self.definitions.committed(prepared.definitions)
        stored = len(prepared.event_rows)
        metrics.incr("capture_events_stored_total", amount=stored)
        metrics.incr("capture_events_duplicate_total", amount=sum(len(r) for r in prepared.results) - stored)
        metrics.incr("capture_batches_total")
        for sub, flags in zip(prepared.submissions, prepared.results):
            if not sub.future.done():
                sub.future.set_result(flags)
        return True

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

"""Write demo events through the ingestion writer's bulk path (the same person processing and
row building as capture) in large batches, with a progress bar on stderr."""

from __future__ import annotations

import asyncio
import sys
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import clock
from app.demo.generator import DemoProduct
from app.ingestion.writer import IngestionWriter
from app.query_engine.executor.base import ClickHouseExecutor

BATCH = 50_000


def _bar(done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.perf_counter() - started, 1e-6)
    sys.stderr.write(f"\r  demo data [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} events"
                     f"  {rate:,.0f}/s ")
    sys.stderr.flush()


async def generate_demo_data(
    clickhouse: ClickHouseExecutor, sessionmaker: async_sessionmaker[AsyncSession], *, environment_id: int,
    events: int, days: int = 30, seed: int = 1, progress: bool = True,
) -> int:
    """Generate and store `events` events for one environment; returns the number written."""
    # Fresh random uuids: skip the duplicate lookup that protects SDK retries.
    writer = IngestionWriter(clickhouse, sessionmaker, dedup_lookup=False)
    product = DemoProduct(seed=seed, days=days, end=clock.now())
    started = time.perf_counter()
    written = 0
    batch: list = []
    writing: asyncio.Task[None] | None = None
    # Generation (Python) overlaps the previous batch's insert (chDB, in a worker thread): yield
    # to the event loop every few thousand events so the writing task can progress.
    for ev in product.events(events):
        batch.append(ev)
        if len(batch) % 5_000 == 0:
            await asyncio.sleep(0)
        if len(batch) >= BATCH:
            if writing is not None:
                await writing
                written += BATCH
                if progress:
                    _bar(written, events, started)
            writing = asyncio.create_task(writer.write_direct(environment_id, batch))
            batch = []
    if writing is not None:
        await writing
        written += BATCH
    if batch:
        await writer.write_direct(environment_id, batch)
        written += len(batch)
    if progress:
        _bar(written, events, started)
        sys.stderr.write("\n")
    return written

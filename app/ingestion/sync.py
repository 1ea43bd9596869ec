"""Keeping each process's person/group view in step with the other processes that ingest.

PostgreSQL is the authority (writes are compare-and-set on versions, see `store.persist_changes`),
so a stale view can never corrupt person state: the batch that used it is prepared again. This
module keeps views fresh enough that this rarely happens and that the person columns written on
event rows follow changes made elsewhere: after committing, a writer appends the distinct ids,
person ids and groups it changed to one Redis stream; before preparing a batch, every writer reads
what the others appended since its last look and drops those entries from its view (they are
reloaded from PostgreSQL with the batch's prefetch). One Redis round trip per batch.

A writer that has not looked for a while (entries may have been trimmed) or cannot reach Redis
drops its whole view instead, which is always correct.
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from typing import Any

import orjson

from app.ingestion import metrics
from app.ingestion.persons import Changes, PersonProcessor

log = logging.getLogger("app.ingestion")

STREAM = "tally:ingestion:person_changes"
MAX_LEN = 20_000
READ_COUNT = 5_000
# Older than this, the entries we have not read may already be trimmed: start over.
STALE_AFTER_SECONDS = 30.0


def changed_keys(changes: Changes) -> dict[str, dict[str, list[Any]]]:
    """{team: {"d": distinct ids, "p": person ids, "g": [index, key] pairs}} of a committed batch."""
    out: dict[str, dict[str, list[Any]]] = {}

    def team(team_id: int) -> dict[str, list[Any]]:
        return out.setdefault(str(team_id), {"d": [], "p": [], "g": []})

    for team_id, pid in list(changes.persons) + list(changes.deleted):
        team(team_id)["p"].append(str(pid))
    for team_id, did in changes.distinct_ids:
        team(team_id)["d"].append(did)
    for team_id, index, key in changes.groups:
        team(team_id)["g"].append([index, key])
    for team_id, _ in changes.group_types:
        team(team_id).setdefault("types", []).append(1)
    return out


class ViewSync:
    def __init__(self, redis: Any, persons: PersonProcessor) -> None:
        self.redis = redis
        self.persons = persons
        self.writer_id = uuidlib.uuid4().hex
        self._last_id: bytes | None = None
        self._synced_at = 0.0

    async def publish(self, changes: Changes) -> None:
        if self.redis is None or not changes:
            return
        keys = changed_keys(changes)
        if not keys:
            return
        try:
            await self.redis.xadd(STREAM, {"w": self.writer_id, "c": orjson.dumps(keys)}, maxlen=MAX_LEN,
                                  approximate=True)
        except Exception as exc:
            # The others will not hear of this change; their stale rows still cannot win (CAS).
            log.warning("could not publish person changes: %s", exc)

    async def refresh(self) -> None:
        """Drop what other writers changed since the last call (call between batch preparations)."""
        if self.redis is None:
            return
        now = time.monotonic()
        try:
            if self._last_id is None or now - self._synced_at > STALE_AFTER_SECONDS:
                latest = await self.redis.xrevrange(STREAM, count=1)
                self._last_id = latest[0][0] if latest else b"0-0"
                self.persons.forget()
            else:
                answer = await self.redis.xread({STREAM: self._last_id}, count=READ_COUNT)
                entries = answer[0][1] if answer else []
                if entries:
                    self._last_id = entries[-1][0]
                if len(entries) >= READ_COUNT:
                    self.persons.forget()
                else:
                    self._apply(entries)
        except Exception as exc:
            log.warning("person change stream unavailable, reloading person state: %s", exc)
            self._last_id = None
            self.persons.forget()
            return
        self._synced_at = now

    def _apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        for _, fields in entries:
            if fields.get(b"w", b"").decode() == self.writer_id:
                continue
            metrics.incr("capture_person_view_invalidations_total")
            for team, keys in orjson.loads(fields[b"c"]).items():
                self.persons.evict(int(team), dids=keys["d"], person_ids=keys["p"],
                                   groups=[(int(i), k) for i, k in keys["g"]], group_types="types" in keys)

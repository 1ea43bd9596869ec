"""Write-time deduplication on (team_id, uuid) (INGESTION.md §8).

Three tiers, cheapest first:
1. an in-process set of recently written uuids (exact for this process);
2. Redis claims shared by every API process: one Lua call per batch sets a claim (TTL CLAIM_TTL)
   on each unseen key and reports the keys already claimed. A failed batch deletes its claims,
   so a retry of a failed write is never mistaken for a duplicate; a committed batch leaves them;
3. the ClickHouse events table, asked only about keys that were already claimed (a resend after a
   commit, a claim left by a crashed process, or a copy another request is writing right now), or
   about everything when Redis is unavailable. (Asking ClickHouse for every batch costs a read of
   the team's whole day of uuids, which grows with volume; see benchmarks/RESULTS.md.) Committed
   claims are not marked as such: resends are rare and the in-process set answers most of them,
   while a second Redis pass to mark them cost every event ~3 µs of CPU.

A copy resent more than CLAIM_TTL after the original is not caught by tier 2; the events table is a
ReplacingMergeTree keyed on the uuid's hash, so same-timestamp copies still collapse on merge.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from typing import Iterable

import orjson

from app.query_engine.executor.base import ClickHouseExecutor

log = logging.getLogger("app.ingestion")

CLAIM_TTL = 48 * 3600
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()

# The keys travel as one argument (24 bytes each: team id, uuid), which costs the client far less
# than one argument per key (redis-py encodes each separately), and the answer is one string with
# a '0' (claimed now) or '1' (already claimed) per key. The keys are built inside the script, so
# this needs a standalone Redis, not Redis Cluster.
_CLAIM = """
local prefix, blob, out = ARGV[2], ARGV[3], {}
for i = 1, #blob, 24 do
  local key = prefix .. string.sub(blob, i, i + 23)
  if redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) then out[#out + 1] = '0' else out[#out + 1] = '1' end
end
return table.concat(out)
"""

# A copy may land on another day after skew correction: look one day either side. The keys
# travel as one JSON string (cheap to encode); the IN-set matches the sort key's columns.
_LOOKUP_SQL = """
SELECT DISTINCT toString(uuid) FROM events
WHERE team_id = {team:Int64}
  AND (toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid)) IN (
      SELECT addDays(toDate('1970-01-01'), k.1 + d), k.2, cityHash64(k.3), cityHash64(toUUID(k.4))
      FROM (SELECT arrayJoin(JSONExtract({keys:String}, 'Array(Tuple(Int32, String, String, String))')) AS k)
      ARRAY JOIN [-1, 0, 1] AS d)
"""

Key = tuple[int, uuidlib.UUID]


_PREFIX = b"tally:dedup:"


def _key_part(team_id: int, event_uuid: uuidlib.UUID) -> bytes:
    return team_id.to_bytes(8, "big", signed=True) + event_uuid.bytes


def redis_key(team_id: int, event_uuid: uuidlib.UUID) -> bytes:
    return _PREFIX + _key_part(team_id, event_uuid)


class Deduplicator:
    def __init__(self, clickhouse: ClickHouseExecutor, redis: object | None) -> None:
        self.clickhouse = clickhouse
        self.redis = redis
        self._claim = redis.register_script(_CLAIM) if redis is not None else None  # type: ignore[attr-defined]

    async def claim(self, candidates: list[tuple[Key, str, str, object]]) -> tuple[set[Key], list[Key]]:
        """candidates: (key, event, distinct_id, timestamp). Returns (duplicates, claimed)."""
        if not candidates:
            return set(), []
        if self._claim is None:
            return await self._lookup(candidates), []
        try:
            blob = b"".join([_key_part(*c[0]) for c in candidates])
            states = await self._claim(keys=[], args=[CLAIM_TTL, _PREFIX, blob])
        except Exception as exc:  # Redis down: ClickHouse answers alone (slower, still correct)
            log.warning("dedup claims unavailable, asking ClickHouse: %s", exc)
            return await self._lookup(candidates), []
        if b"1" not in states:  # the common case: every key was claimed now
            return set(), [c[0] for c in candidates]
        claimed: list[Key] = []
        contested = []
        for candidate, state in zip(candidates, states):
            if state == 48:  # b"0"
                claimed.append(candidate[0])
            else:
                contested.append(candidate)
        duplicates = await self._lookup(contested) if contested else set()
        return duplicates, claimed

    async def release(self, keys: list[Key]) -> None:
        """A batch that was not written gives its claims back (claims left behind expire anyway)."""
        if self.redis is None or not keys:
            return
        try:
            await self.redis.delete(*[redis_key(*k) for k in keys])  # type: ignore[attr-defined]
        except Exception as exc:
            log.warning("could not release dedup claims: %s", exc)

    async def _lookup(self, candidates: Iterable[tuple[Key, str, str, object]]) -> set[Key]:
        by_team: dict[int, list] = {}
        for (team_id, event_uuid), event, distinct_id, ts in candidates:
            by_team.setdefault(team_id, []).append(
                (ts.toordinal() - _EPOCH_ORDINAL, event, distinct_id, str(event_uuid)))  # type: ignore[attr-defined]
        found: set[Key] = set()
        for team_id, keys in by_team.items():
            result = await self.clickhouse.execute(_LOOKUP_SQL, {"team": team_id, "keys": orjson.dumps(keys).decode()})
            found.update((team_id, uuidlib.UUID(row[0])) for row in result.rows)
        return found

"""Write-time deduplication on (team_id, uuid) (INGESTION.md §8).

Three tiers, cheapest first:
1. an in-process set of recently written uuids (exact for this process);
2. Redis claims shared by every API process: one Lua call per batch claims each unseen key and
   reports the keys already claimed. A failed batch gives its claims back, so a retry of a failed
   write is never mistaken for a duplicate; a committed batch leaves them;
3. the ClickHouse events table, asked only about keys that were already claimed (a resend after a
   commit, a claim left by a crashed process, or a copy another request is writing right now), or
   about everything when Redis is unavailable. (Asking ClickHouse for every batch costs a read of
   the team's whole day of uuids, which grows with volume; see benchmarks/RESULTS.md.) Committed
   claims are not marked as such: resends are rare and the in-process set answers most of them,
   while a second Redis pass to mark them cost every event ~3 µs of CPU.

Claims are members of one Redis set per day (`{tally:dedup}:day:<n>`, days since the epoch by
`app.clock`): a key counts as claimed while it is in any of the last CLAIM_DAYS sets, and each set
expires when it leaves that window, so a claim lasts between CLAIM_DAYS − 1 and CLAIM_DAYS days.
Set members cost Redis ~1.5 µs of CPU per key (`SMISMEMBER`/`SADD` on the whole batch) against ~6 µs
for a key of its own with a TTL (`SET NX EX`, measured with 2 M claims held), and a third less
memory; the call sits on every batch's critical path. A day's set is freed at once when it
expires: the embedded Redis frees it in the background (`lazyfree-lazy-expire`), an external one
should be configured likewise.

A copy resent after its claim is gone is not caught by tier 2; the events table is a
ReplacingMergeTree keyed on the uuid's hash, so same-timestamp copies still collapse on merge.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from datetime import datetime
from typing import Iterable

import orjson

from app import clock
from app.query_engine.executor.base import ClickHouseExecutor

log = logging.getLogger("app.ingestion")

DAY_SECONDS = 86_400
CLAIM_DAYS = 3
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
# The hash tag keeps every day set in one Redis Cluster slot (the script names several).
_DAY_PREFIX = "{tally:dedup}:day:"

# KEYS: the window's day sets, newest first (new claims go to KEYS[1]); ARGV[1]: seconds until
# KEYS[1] leaves the window; ARGV[2]: the keys as one string, 24 bytes each (team id, uuid): one
# argument costs the client far less than one per key (redis-py encodes each separately). The
# answer has a '0' (claimed now) or '1' (already claimed, also by an earlier copy in this call)
# per key. Sets are read and written CHUNK members per command (Lua's unpack has a stack limit).
_CLAIM = """
local blob, chunk = ARGV[2], 1000
local n = #blob / 24
local members, state = {}, {}
for i = 1, n do
  local m = string.sub(blob, i * 24 - 23, i * 24)
  members[i] = m
  if state[m] then state[i] = '1' else state[m] = true end
end
for k = 1, #KEYS do
  for s = 1, n, chunk do
    local e = math.min(s + chunk - 1, n)
    local found = redis.call('SMISMEMBER', KEYS[k], unpack(members, s, e))
    for i = s, e do
      if found[i - s + 1] == 1 then state[i] = '1' end
    end
  end
end
local out, fresh = {}, {}
for i = 1, n do
  if state[i] == '1' then out[i] = '1' else out[i] = '0'; fresh[#fresh + 1] = members[i] end
end
for s = 1, #fresh, chunk do
  redis.call('SADD', KEYS[1], unpack(fresh, s, math.min(s + chunk - 1, #fresh)))
end
if #fresh > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return table.concat(out)
"""
_RELEASE_CHUNK = 1000

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


def member(team_id: int, event_uuid: uuidlib.UUID) -> bytes:
    """A key as a member of the day sets."""
    return team_id.to_bytes(8, "big", signed=True) + event_uuid.bytes


def day_sets(now: datetime) -> tuple[list[str], int]:
    """The claim window's day sets at `now`, newest first, and the seconds until the newest one
    leaves the window (its TTL: relative, so a frozen clock never expires a set being written)."""
    stamp = int(now.timestamp())
    day = stamp // DAY_SECONDS
    return [f"{_DAY_PREFIX}{day - back}" for back in range(CLAIM_DAYS)], (day + CLAIM_DAYS) * DAY_SECONDS - stamp


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
            sets, ttl = day_sets(clock.now())
            blob = b"".join([member(*c[0]) for c in candidates])
            states = await self._claim(keys=sets, args=[ttl, blob])
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
        """A batch that was not written gives its claims back (from every set of the window: the day
        may have turned since they were made); claims left behind expire with their set."""
        if self.redis is None or not keys:
            return
        members = [member(*k) for k in keys]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
                for name in day_sets(clock.now())[0]:
                    for start in range(0, len(members), _RELEASE_CHUNK):
                        pipe.srem(name, *members[start:start + _RELEASE_CHUNK])
                await pipe.execute()
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

"""Which worker holds which partition, recorded in Redis as ``<ns>:{<ns>}:owner:<type>:<p>``.

A worker claims a partition that is free or whose holder is no longer live (its heartbeat
expiry, read in the script itself, is past Redis' ``TIME``); it releases its claim only after the
partition's turns ended. Each step is one Lua script, so two workers never both believe a
compare-and-set succeeded, and a worker whose list of live workers is a moment old cannot take
the partition of a worker that joined meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from .._names import Names
from ._errors import redis_errors
from ._text import text

# KEYS: owner, workers (zset id -> expiry ms); ARGV: claimer
# Returns {1, previous holder or ''} when the claimer holds it now, {0, holder} when a live
# worker holds it.
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return {1, ''} end
if holder then
  local expiry = redis.call('ZSCORE', KEYS[2], holder)
  if expiry and tonumber(expiry) > now then return {0, holder} end
end
redis.call('SET', KEYS[1], ARGV[1])
return {1, holder or ''}
"""

# KEYS: owner; ARGV: expected holder, new holder ('' deletes)
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
"""


@dataclass(frozen=True)
class Claim:
    held: bool
    other: str  # held: the expired holder it was taken from ('' if none); else the live holder


class PartitionClaims:
    def __init__(self, redis: Redis, names: Names, worker_id: str, server: str) -> None:
        self._redis = redis
        self._names = names
        self._worker_id = worker_id
        self._server = server
        self._claim = redis.register_script(_CLAIM)
        self._swap = redis.register_script(_SWAP)

    async def claim(self, agent_type: str, partition: int) -> Claim:
        """Hold the partition if it is free, this worker's, or its holder is not live."""
        keys = [self._names.owner_key(agent_type, partition), self._names.workers_key]
        with redis_errors(self._server):
            held, other = await self._claim(keys=keys, args=[self._worker_id])
        return Claim(bool(held), text(other or ""))

    async def holders(self, agent_type: str, partitions: int) -> list[str | None]:
        """The holder of each partition of ``agent_type`` (``None``: free)."""
        keys = [self._names.owner_key(agent_type, p) for p in range(partitions)]
        with redis_errors(self._server):
            values = await self._redis.mget(keys)
        return [None if v is None else text(v) for v in values]

    async def release(self, agent_type: str, partition: int) -> None:
        """Give the partition up, if this worker still holds it."""
        await self._compare_and_set(agent_type, partition, self._worker_id, "")

    async def hand_back(self, agent_type: str, partition: int, to: str) -> bool:
        """Give a partition this worker claimed from ``to`` back to it (``to`` turned out to be
        alive and still consuming it)."""
        return await self._compare_and_set(agent_type, partition, self._worker_id, to)

    async def take_back(self, agent_type: str, partition: int, holder: str) -> bool:
        """Take back from ``holder`` a partition whose queue this worker still consumes (the
        holder claimed it while this worker seemed dead, and waits for the queue to be free)."""
        return await self._compare_and_set(agent_type, partition, holder, self._worker_id)

    async def _compare_and_set(self, agent_type: str, partition: int, old: str, new: str) -> bool:
        key = self._names.owner_key(agent_type, partition)
        with redis_errors(self._server):
            return bool(await self._swap(keys=[key], args=[old, new]))

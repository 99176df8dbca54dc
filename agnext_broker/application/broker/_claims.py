"""Which worker consumes which partition, recorded in Redis as ``<ns>:owner:<type>:<p>``.

A worker claims a partition unless another *live* worker holds it (a dead worker's claim is
void); it releases its claim only after finishing the partition's turns. Both steps are single
Lua scripts, so two workers never both believe a compare-and-set succeeded. Whether the holder
is live is read in the claim script itself, from the workers' heartbeat expiries: a worker whose
list of live workers is a moment old (one that joined meanwhile is missing from it) cannot take
that worker's partitions, and so never consumes one whose previous owner is still finishing its
turns.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from ._names import Names

# Claim KEYS[1] for ARGV[1] unless another worker holds it whose heartbeat expiry in KEYS[2]
# (the workers' sorted set) is later than ARGV[2] (now, in unix seconds).
_CLAIM_IF_FREE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  local expiry = redis.call('ZSCORE', KEYS[2], holder)
  if expiry and tonumber(expiry) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

_DELETE_IF_HOLDER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PartitionClaims:
    def __init__(self, redis: Redis, names: Names, worker_id: str) -> None:
        self._names = names
        self._worker_id = worker_id
        self._claim = redis.register_script(_CLAIM_IF_FREE)
        self._release = redis.register_script(_DELETE_IF_HOLDER)

    async def claim(self, agent_type: str, partition: int) -> bool:
        """Whether this worker now holds the partition."""
        keys = [self._names.owner_key(agent_type, partition), self._names.workers_key]
        return bool(await self._claim(keys=keys, args=[self._worker_id, time.time()]))

    async def release(self, agent_type: str, partition: int) -> None:
        """Give the partition up, if this worker still holds it."""
        key = self._names.owner_key(agent_type, partition)
        await self._release(keys=[key], args=[self._worker_id])

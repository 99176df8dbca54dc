"""Which worker consumes which partition, recorded in Redis as ``<ns>:owner:<type>:<p>``.

A worker claims a partition unless another *live* worker holds it (a dead worker's claim is
void); it releases its claim only after finishing the partition's turns. Both steps are single
Lua scripts, so two workers never both believe a compare-and-set succeeded.
"""

from __future__ import annotations

from redis.asyncio import Redis

from ._names import Names

# Claim KEYS[1] for ARGV[1] unless it is held by another of the live workers ARGV[2..].
_CLAIM_IF_FREE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  for i = 2, #ARGV do
    if ARGV[i] == holder then return 0 end
  end
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

    async def claim(self, agent_type: str, partition: int, live_workers: list[str]) -> bool:
        """Whether this worker now holds the partition."""
        key = self._names.owner_key(agent_type, partition)
        return bool(await self._claim(keys=[key], args=[self._worker_id, *live_workers]))

    async def release(self, agent_type: str, partition: int) -> None:
        """Give the partition up, if this worker still holds it."""
        key = self._names.owner_key(agent_type, partition)
        await self._release(keys=[key], args=[self._worker_id])

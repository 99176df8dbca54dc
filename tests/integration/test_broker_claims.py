"""Partition claims in a real Redis: a worker takes a partition only from a holder that is gone."""

from __future__ import annotations

import time

import pytest
import redis.asyncio

from agnext_broker.application.broker._claims import PartitionClaims
from agnext_broker.application.broker._names import Names
from agnext_broker.application.broker._registry import Registry

pytestmark = pytest.mark.integration


async def test_a_partition_held_by_a_live_worker_is_not_taken(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    names = Names(namespace)
    first = PartitionClaims(redis_client, names, "w1")
    second = PartitionClaims(redis_client, names, "w2")
    await Registry(redis_client, names).heartbeat("w1", ["counter"], time.time(), expiry=30)

    assert await first.claim("counter", 3)
    # Whatever w2 last read of the live workers (a list read before w1 joined, say), w1's
    # heartbeat in Redis keeps the partition w1's.
    assert not await second.claim("counter", 3)
    assert await redis_client.get(names.owner_key("counter", 3)) == b"w1"
    assert await first.claim("counter", 3)  # its holder claims it again

    await first.release("counter", 3)  # after finishing its turns
    assert await second.claim("counter", 3)


async def test_a_partition_whose_holder_expired_or_left_is_taken(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    names = Names(namespace)
    registry = Registry(redis_client, names)
    first = PartitionClaims(redis_client, names, "w1")
    second = PartitionClaims(redis_client, names, "w2")
    await registry.heartbeat("w1", ["counter"], time.time(), expiry=30)
    assert await first.claim("counter", 0)
    assert await first.claim("counter", 1)

    await redis_client.zadd(names.workers_key, {"w1": time.time() - 1})  # its heartbeat expired
    assert await second.claim("counter", 0)

    await registry.heartbeat("w1", ["counter"], time.time(), expiry=30)
    await registry.leave("w1")
    assert await second.claim("counter", 1)
    assert await redis_client.get(names.owner_key("counter", 1)) == b"w2"

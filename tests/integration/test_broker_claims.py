"""Partition claims in a real Redis: a worker takes a partition only from a holder that is gone,
judged on Redis' clock, and a claim taken from a worker that seemed dead goes back to it."""

from __future__ import annotations

import time

import pytest
import redis.asyncio

from agnext_broker.application.broker._names import Names
from agnext_broker.application.broker._redis import PartitionClaims, Registry

pytestmark = pytest.mark.integration


def claims(client: redis.asyncio.Redis, names: Names, worker: str) -> PartitionClaims:
    return PartitionClaims(client, names, worker, "test redis")


async def test_a_partition_held_by_a_live_worker_is_not_taken(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    names = Names(namespace)
    first, second = claims(redis_client, names, "w1"), claims(redis_client, names, "w2")
    await Registry(redis_client, names, "test redis").heartbeat(
        "w1", ["counter"], time.time(), expiry=30
    )

    assert (await first.claim("counter", 3)).held
    # Whatever w2 last read of the live workers (a list read before w1 joined, say), w1's
    # heartbeat in Redis keeps the partition w1's.
    refused = await second.claim("counter", 3)
    assert (refused.held, refused.other) == (False, "w1")
    assert await redis_client.get(names.owner_key("counter", 3)) == b"w1"
    assert (await first.claim("counter", 3)).held  # its holder claims it again
    assert await second.holders("counter", 4) == [None, None, None, "w1"]

    await first.release("counter", 3)  # after finishing its turns
    taken = await second.claim("counter", 3)
    assert (taken.held, taken.other) == (True, "")


async def test_a_partition_whose_holder_expired_or_left_is_taken_and_can_go_back(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    names = Names(namespace)
    registry = Registry(redis_client, names, "test redis")
    first, second = claims(redis_client, names, "w1"), claims(redis_client, names, "w2")
    await registry.heartbeat("w1", ["counter"], time.time(), expiry=30)
    assert (await first.claim("counter", 0)).held
    assert (await first.claim("counter", 1)).held

    # w1's heartbeat expired (the expiry is in ms on Redis' clock, which is this machine's).
    await redis_client.zadd(names.workers_key, {"w1": time.time() * 1000 - 1000})
    taken = await second.claim("counter", 0)
    assert (taken.held, taken.other) == (True, "w1")  # w2 knows whom it took it from

    # w1 was only stalled and still consumes partition 0: w2 hands it back, and w1 holds it.
    assert await second.hand_back("counter", 0, "w1")
    assert await redis_client.get(names.owner_key("counter", 0)) == b"w1"
    assert not await second.hand_back("counter", 0, "w1")  # only its holder can

    await registry.heartbeat("w1", ["counter"], time.time(), expiry=30)
    await registry.leave("w1")
    assert (await second.claim("counter", 1)).held
    assert await redis_client.get(names.owner_key("counter", 1)) == b"w2"
    # w1, which consumes partition 1 still (say), takes it back from w2.
    assert await first.take_back("counter", 1, "w2")
    assert await redis_client.get(names.owner_key("counter", 1)) == b"w1"

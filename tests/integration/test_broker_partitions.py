"""Partitions shared between worker subprocesses: fair shares, a joining worker, a killed one."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import zlib

import aio_pika
import aiormq
import pytest
import redis.asyncio

from agnext_broker import AgentId
from agnext_broker.application.broker._names import Names
from tests.integration.apps import COUNTER_TYPE, GetStatus, Increment, Status, register_counter
from tests.integration.workers import (
    PARTITIONS,
    Process,
    RuntimePool,
    WorkerPool,
    owners,
    runtimes_fixture,  # noqa: F401
    shared_owners,
    wait_until,
    workers_fixture,  # noqa: F401
)
from tests.servers import AmqpCleanup, AnyRabbitMQ

pytestmark = pytest.mark.integration


def partition_of(key: str) -> int:
    """The documented partition: the low bits of crc32(key)."""
    return zlib.crc32(key.encode()) & (PARTITIONS - 1)


def keys_per_partition(per_partition: int = 2) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    index = 0
    while any(len(keys) < per_partition for keys in found.values()):
        key = f"key{index}"
        if len(found[partition_of(key)]) < per_partition:
            found[partition_of(key)].append(key)
        index += 1
    return found


async def settled_owners(
    client: redis.asyncio.Redis, pool: WorkerPool, hosts: list[Process], timeout: float
) -> dict[int, str]:
    return await shared_owners(
        client,
        pool.namespace,
        COUNTER_TYPE,
        {w.worker_id for w in hosts},
        timeout=timeout,
        details=pool.logs,
    )


async def first_share(
    client: redis.asyncio.Redis, pool: WorkerPool, worker: Process, timeout: float
) -> float:
    """Seconds until ``worker`` owns a partition."""
    started = time.monotonic()

    async def owns() -> bool:
        return worker.worker_id in (await owners(client, pool.namespace, COUNTER_TYPE)).values()

    await wait_until(
        owns, timeout=timeout, what=f"{worker.name} owns a partition", details=pool.logs
    )
    return time.monotonic() - started


@pytest.mark.integration
async def test_workers_share_partitions_and_take_over_a_killed_one(
    workers: WorkerPool, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    first, second = await workers.start_hosts(redis_client, 2)
    shared = await settled_owners(redis_client, workers, [first, second], timeout=10)
    by_id = {w.worker_id: w for w in (first, second)}
    assert set(shared.values()) == set(by_id), shared  # both own some, every one is owned

    client = await runtimes.start(rpc_timeout=15.0)
    keys = keys_per_partition()
    expected: dict[str, int] = {}
    for partition, partition_keys in keys.items():
        for i, key in enumerate(partition_keys):
            expected[key] = partition * 10 + i + 1
            await client.send_message(Increment(expected[key]), AgentId(COUNTER_TYPE, key))

    async def check_answers(owned: dict[int, str], live: dict[str, Process]) -> None:
        for partition, partition_keys in keys.items():
            for key in partition_keys:
                status = await client.send_message(GetStatus(), AgentId(COUNTER_TYPE, key))
                assert isinstance(status, Status)
                assert status.count == expected[key], (key, status, workers.logs())
                owner = live[owned[partition]]
                assert status.pid == owner.pid, (
                    f"{key} (partition {partition}) answered by pid {status.pid}, but Redis says "
                    f"{owner.name} (pid {owner.pid}) owns it\n{workers.logs()}"
                )

    await check_answers(shared, by_id)

    # A third worker takes a share within a few seconds.
    third = workers.start_worker()
    await workers.wait_registered(redis_client, third)
    took = await first_share(redis_client, workers, third, timeout=10)
    print(f"the third worker owned a partition {took:.2f} s after it registered")
    by_id[third.worker_id] = third
    shared = await settled_owners(redis_client, workers, [first, second, third], timeout=10)
    await check_answers(shared, by_id)

    # SIGKILL the worker owning the most partitions: the others take them over, and its agents
    # answer from another worker with their saved state.
    victim = by_id[max(by_id, key=lambda w: list(shared.values()).count(w))]
    lost = sorted(p for p, w in shared.items() if w == victim.worker_id)
    workers.kill(victim)
    killed_at = time.monotonic()
    del by_id[victim.worker_id]
    survivors = list(by_id.values())
    survivor_ids = {w.worker_id for w in survivors}

    async def moved() -> bool:
        current = await owners(redis_client, workers.namespace, COUNTER_TYPE)
        return all(current[p] in survivor_ids for p in lost)

    await wait_until(moved, timeout=20, what=f"partitions {lost} move", details=workers.logs)
    failover = time.monotonic() - killed_at
    shared = await settled_owners(redis_client, workers, survivors, timeout=20)
    assert all(shared[p] != victim.worker_id for p in lost)
    await check_answers(shared, by_id)
    answered = time.monotonic() - killed_at
    print(
        f"partitions {lost} of the killed worker moved in {failover:.2f} s; "
        f"its agents answered {answered:.2f} s after SIGKILL"
    )

    # A worker stopped with SIGTERM drains, leaves, exits 0, and the last one takes everything.
    leaving, last = survivors
    assert await workers.terminate(leaving) == 0, workers.logs()
    del by_id[leaving.worker_id]
    shared = await settled_owners(redis_client, workers, [last], timeout=10)
    await check_answers(shared, by_id)


@pytest.mark.integration
async def test_a_stalled_worker_that_comes_back_still_owns_its_partitions(
    workers: WorkerPool, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    """A worker that misses its heartbeats for longer than the expiry (a long GC pause, a
    blocked event loop, a frozen VM; here SIGSTOP) loses its partitions to the others, and when
    it comes back the partitions are shared again, each with its owner recorded in Redis."""
    first, second = await workers.start_hosts(redis_client, 2)
    before = await owners(redis_client, workers.namespace, COUNTER_TYPE)
    stalled = sorted(p for p, w in before.items() if w == second.worker_id)

    # Stop it between two heartbeats (just after one), not in the middle of one.
    workers_key = Names(workers.namespace).workers_key
    last_beat = await redis_client.zscore(workers_key, second.worker_id)

    async def beat() -> bool:
        return await redis_client.zscore(workers_key, second.worker_id) != last_beat

    await wait_until(beat, timeout=10, what=f"{second.name} heartbeats", period=0.01)
    await asyncio.sleep(0.1)
    os.kill(second.pid, signal.SIGSTOP)
    try:

        async def taken() -> bool:
            current = await owners(redis_client, workers.namespace, COUNTER_TYPE)
            return set(current.values()) == {first.worker_id}

        await wait_until(
            taken, timeout=15, what=f"{first.name} owns every partition", details=workers.logs
        )
    finally:
        os.kill(second.pid, signal.SIGCONT)
    await workers.wait_registered(redis_client, second)

    shared = await settled_owners(redis_client, workers, [first, second], timeout=10)
    # Its agents answer, from the worker Redis names.
    client = await runtimes.start(rpc_timeout=15.0)
    by_id = {w.worker_id: w for w in (first, second)}
    for partition, keys in keys_per_partition(1).items():
        status = await client.send_message(GetStatus(), AgentId(COUNTER_TYPE, keys[0]))
        assert status.pid == by_id[shared[partition]].pid, (partition, stalled, workers.logs())


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    pass


@pytest.mark.integration
async def test_classic_partition_queues_have_one_exclusive_consumer(
    rabbitmq: AnyRabbitMQ, runtimes: RuntimePool, namespace: str, amqp_cleanup: AmqpCleanup
) -> None:
    # queue_type="classic": the worker's consumer is exclusive, so the broker refuses a second
    # one (a quorum queue would accept it silently; there single-active-consumer does the job).
    worker = await runtimes.start(register_counter, queue_type="classic")
    agent = AgentId(COUNTER_TYPE, "classic")
    for expected in (1, 2, 3):
        assert await worker.send_message(Increment(1), agent) == expected
    partition = zlib.crc32(b"classic") % PARTITIONS
    queue_name = amqp_cleanup.queue(f"{namespace}.agent.{COUNTER_TYPE}.{partition}")

    connection = await aio_pika.connect(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="exclusive"):
            await queue.consume(_ignore)

    restarted = await runtimes.start(register_counter, queue_type="classic")
    await runtimes.stop(worker)  # its partitions move to the other worker, its state with them
    assert await restarted.send_message(Increment(1), agent) == 4

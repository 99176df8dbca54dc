"""Workers that stop (SIGTERM) or join while their handlers run lose nothing and never let two
instances of one agent handle messages at once.

- A worker SIGTERMed while it runs about fifty handlers, with some two thousand events still
  queued, drains: the batch completes exactly, nothing is dead-lettered, and the caller of
  ``RunBatch`` gets its report, whichever worker hosted the coordinator.
- Handlers of 30 s run while a third worker joins and one of the first two is SIGTERMed: each
  agent's messages are handled one at a time, by one instance, in the order they were sent; the
  heartbeats go on meanwhile (no worker's partitions are taken over as if it had died).
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from typing import Any

import aio_pika
import pytest
import redis.asyncio

from agnext_broker import AgentId, try_get_known_serializers_for_type
from agnext_broker.examples.tally import Report, RunBatch
from tests.integration.apps_drain import HOLDER_TYPE, Held, Hold, holder_keys
from tests.integration.workers import (
    PARTITIONS,
    RuntimePool,
    WorkerPool,
    owners,
    runtimes_fixture,  # noqa: F401
    shared_owners,
    state_document,
    wait_until,
    workers_fixture,  # noqa: F401
)
from tests.servers import AnyRabbitMQ

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

TALLY_APP = "tests.integration.apps_drain:register_slow_tally"
HOLDER_APP = "tests.integration.apps_drain:register_holder"
KEYS = [f"key{i:02d}" for i in range(50)]
ITEMS_PER_KEY = 40  # 2,000 work items
DRAIN_ENV = {"AGNEXT_DRAIN_TIMEOUT": "90", "TALLY_DELAY": "0.1"}
TALLY_TYPES = ("coordinator", "tallier", "reporter")


async def dead_letter_count(rabbitmq: AnyRabbitMQ, namespace: str) -> int:
    connection = await aio_pika.connect(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{namespace}.dead-letter", passive=True)
        return int(queue.declaration_result.message_count or 0)


async def tallied(client: redis.asyncio.Redis, namespace: str) -> int:
    document = await state_document(client, namespace, "reporter", "default")
    return 0 if document is None else int(document["state"]["items"])


def forget_tally_queues(workers: WorkerPool, cleanup: Any) -> None:
    for agent_type in TALLY_TYPES:
        for partition in range(PARTITIONS):
            cleanup.queue(f"{workers.namespace}.agent.{agent_type}.{partition}")


@pytest.mark.parametrize("stopped", ["the coordinator's worker", "the other worker"])
async def test_sigterm_while_handlers_run_completes_the_batch_exactly(
    stopped: str,
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    rabbitmq: AnyRabbitMQ,
    amqp_cleanup: Any,
) -> None:
    forget_tally_queues(workers, amqp_cleanup)
    workers.env = DRAIN_ENV
    hosts = await workers.start_hosts(redis_client, 2, TALLY_APP, "coordinator")
    for agent_type in ("tallier", "reporter"):
        await shared_owners(
            redis_client, workers.namespace, agent_type, {w.worker_id for w in hosts}, timeout=20
        )
    coordinator_owner = (await owners(redis_client, workers.namespace, "coordinator"))[
        partition_of("default")
    ]
    by_id = {w.worker_id: w for w in hosts}
    target = by_id[coordinator_owner]
    if stopped == "the other worker":
        target = next(w for w in hosts if w is not target)

    client = await runtimes.start(rpc_timeout=240.0)
    started = time.monotonic()
    batch = asyncio.ensure_future(
        client.send_message(
            RunBatch(keys=KEYS, items_per_key=ITEMS_PER_KEY, timeout_s=200),
            AgentId("coordinator", "default"),
        )
    )
    total = len(KEYS) * ITEMS_PER_KEY
    await wait_until(
        lambda: _at_least(redis_client, workers.namespace, total * 3 // 10),
        timeout=120,
        what="30% of the batch is tallied",
        details=workers.logs,
    )
    at_signal = await tallied(redis_client, workers.namespace)
    assert at_signal < total, "the batch finished before the SIGTERM: make it longer"
    code = await workers.terminate(target, timeout=120)
    assert code == 0, workers.logs()

    report: Report = await asyncio.wait_for(batch, 240)
    elapsed = time.monotonic() - started
    print(
        f"SIGTERM of {stopped} at {at_signal}/{total} tallied; batch done in {elapsed:.1f} s; "
        f"report {report.items} items"
    )
    assert report.items == total
    assert report.counts == dict.fromkeys(KEYS, ITEMS_PER_KEY)
    assert report.totals == dict.fromkeys(KEYS, sum(range(1, ITEMS_PER_KEY + 1)))
    for key in KEYS:  # every item applied once, by the tallier that kept it
        document = await state_document(redis_client, workers.namespace, "tallier", key)
        assert document is not None
        assert document["state"]["count"] == ITEMS_PER_KEY, key
    assert await dead_letter_count(rabbitmq, workers.namespace) == 0
    log = target.log()
    assert "draining" in log
    assert "Call runtime.start()" not in workers.logs(400)


async def _at_least(client: redis.asyncio.Redis, namespace: str, count: int) -> bool:
    return await tallied(client, namespace) >= count


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) & (PARTITIONS - 1)


HOLD_SECONDS = 30.0
HOLD_KEYS = [f"h{i}" for i in range(16)]


async def test_long_handlers_across_a_join_and_a_sigterm_keep_one_activation(
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    amqp_cleanup: Any,
) -> None:
    for partition in range(PARTITIONS):
        amqp_cleanup.queue(f"{workers.namespace}.agent.{HOLDER_TYPE}.{partition}")
    workers.env = {"AGNEXT_DRAIN_TIMEOUT": "120"}
    first, second = await workers.start_hosts(redis_client, 2, HOLDER_APP, HOLDER_TYPE)
    keys_per_partition = {partition_of(k) for k in HOLD_KEYS}
    assert keys_per_partition == set(range(PARTITIONS))

    client = await runtimes.start(rpc_timeout=300.0)
    for message_type in (Hold, Held):
        client.add_message_serializer(try_get_known_serializers_for_type(message_type))
    long_holds = [
        asyncio.ensure_future(
            client.send_message(Hold(HOLD_SECONDS, "long"), AgentId(HOLDER_TYPE, key))
        )
        for key in HOLD_KEYS
    ]
    busy_keys = [holder_keys(workers.namespace, key)[0] for key in HOLD_KEYS]

    async def all_busy() -> bool:
        return all(await asyncio.gather(*(redis_client.exists(k) for k in busy_keys)))

    await wait_until(all_busy, timeout=60, what="every long hold began", details=workers.logs)
    # Each agent gets a short one behind its long one: it must wait its turn, on one instance.
    short_holds = [
        asyncio.ensure_future(client.send_message(Hold(0.1, "short"), AgentId(HOLDER_TYPE, key)))
        for key in HOLD_KEYS
    ]
    third = workers.start_worker(HOLDER_APP)
    await workers.wait_registered(redis_client, third)
    first.process.terminate()  # SIGTERM while its long holds run
    exit_code = await workers.wait_exit(first, timeout=200)

    held: list[Held] = await asyncio.wait_for(asyncio.gather(*long_holds, *short_holds), 300)
    assert exit_code == 0, workers.logs()
    assert [h.tag for h in held] == ["long"] * len(HOLD_KEYS) + ["short"] * len(HOLD_KEYS)
    overlaps = await redis_client.lrange(holder_keys(workers.namespace, "x")[2], 0, -1)
    assert overlaps == [], f"two instances of one agent at once: {overlaps}\n{workers.logs(80)}"
    for key in HOLD_KEYS:
        order = await redis_client.lrange(holder_keys(workers.namespace, key)[1], 0, -1)
        assert order == [b"long", b"short"], (key, order)
    # No worker looked dead: nobody took partitions over from an expired heartbeat.
    logs = workers.logs(400)
    assert "whose heartbeat expired" not in logs, logs
    survivors = {second.worker_id, third.worker_id}
    final = await shared_owners(redis_client, workers.namespace, HOLDER_TYPE, survivors, timeout=30)
    assert set(final.values()) == survivors
    print(json.dumps({"workers": [w.name for w in (first, second, third)], "final": final}))

"""Redis stopping under a running worker: the state write of a handled message waits for Redis,
then lands once, and the caller gets its answer; a longer outage (every heartbeat expires)
gives no message back to its queue and answers every call once Redis is back."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from agnext_broker import AgentId, TopicId
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Increment,
    ReadCount,
    register_counter,
)
from tests.integration.workers import (
    RuntimePool,
    runtimes_fixture,  # noqa: F401
    wait_until,
)
from tests.servers import AnyRabbitMQ, RedisServer

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 1.5


@pytest.mark.timeout(120)
async def test_a_message_handled_while_redis_is_down_is_saved_once_it_is_back(
    runtimes: RuntimePool, private_redis_server: RedisServer
) -> None:
    # Heartbeats fail during the outage: a longer expiry keeps the worker live meanwhile.
    worker = await runtimes.start(register_counter, worker_expiry=15.0)
    client = await runtimes.start(rpc_timeout=30.0, worker_expiry=15.0)
    agent = AgentId(COUNTER_TYPE, "patient")
    assert await client.send_message(Increment(1), agent) == 1

    await private_redis_server.astop()
    try:
        # The worker runs the handler (the agent is active), then cannot save its state.
        sending = asyncio.ensure_future(client.send_message(Increment(2), agent))
        await asyncio.sleep(OUTAGE_SECONDS)
        assert not sending.done(), "answered before its state could be saved"
    finally:
        await private_redis_server.astart()

    # Saved once Redis is back, then answered; the handler's effect counted once.
    assert await asyncio.wait_for(sending, 30) == 3
    assert await client.send_message(ReadCount(), agent) == 3
    assert await worker.send_message(ReadCount(), agent) == 3


REDIS_OUTAGE_SECONDS = 10.0
KEYS = [f"k{i}" for i in range(8)]  # active before the outage
NEW_KEYS = [f"n{i}" for i in range(8)]  # activated during it: loading their state needs Redis
EVENTS_PER_KEY = 50


async def dead_letters(amqp_url: str, namespace: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{namespace}.dead-letter", passive=True)
        return int(queue.declaration_result.message_count or 0)


@pytest.mark.timeout(240)
async def test_a_redis_outage_of_ten_seconds_leaves_the_delivery_counts_alone(
    runtimes: RuntimePool, private_redis_server: RedisServer, rabbitmq: AnyRabbitMQ, namespace: str
) -> None:
    # The default worker_expiry (2 s here): every heartbeat expires during the outage.
    worker = await runtimes.start(register_counter)
    client = await runtimes.start(rpc_timeout=90.0, publish_timeout=30.0)
    for key in KEYS:
        assert await client.send_message(Increment(1), AgentId(COUNTER_TYPE, key)) == 1
    session = worker._session
    assert session is not None
    stats, consumers = session.hosting.ownership.stats, session.transport.consumers
    redelivered, requeued = stats.redelivered, consumers.requeued

    await private_redis_server.astop()
    try:
        # Work keeps coming while Redis is away: the worker holds what it took (no more than
        # its prefetch), the rest waits in the queues; nothing goes back, nothing is lost.
        for _ in range(EVENTS_PER_KEY):
            for key in KEYS + NEW_KEYS:
                await client.publish_message(Increment(1), TopicId(INCREMENTS_TOPIC, key))
        calls = [
            asyncio.ensure_future(client.send_message(Increment(1), AgentId(COUNTER_TYPE, key)))
            for key in KEYS + NEW_KEYS
        ]
        await asyncio.sleep(REDIS_OUTAGE_SECONDS)  # the outage being tested, not a wait
        assert not any(call.done() for call in calls), [c.result() for c in calls if c.done()]
    finally:
        await private_redis_server.astart()

    # Every call is answered (none with "no live worker hosts ..."), each increment counted once.
    answers = await asyncio.wait_for(asyncio.gather(*calls), 120)
    assert all(isinstance(a, int) for a in answers)
    expected = {key: 1 + EVENTS_PER_KEY + 1 for key in KEYS}
    expected.update({key: EVENTS_PER_KEY + 1 for key in NEW_KEYS})

    async def all_counted() -> bool:
        counts = {
            key: await client.send_message(ReadCount(), AgentId(COUNTER_TYPE, key))
            for key in expected
        }
        return counts == expected

    await wait_until(all_counted, timeout=60, what=f"the counters reach {expected}")
    assert (stats.redelivered, consumers.requeued) == (redelivered, requeued)
    assert stats.highest_delivery_count == 0
    assert await dead_letters(rabbitmq.amqp_url, namespace) == 0

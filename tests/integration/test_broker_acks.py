"""How a worker settles deliveries on a real RabbitMQ: finished ones are acked even while an
earlier one is still being handled, one given back is delivered again, not acked, and those
finished when the consumers close are acked before the connection goes."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage

from agnext_broker.application.broker._amqp import Consumers
from tests.integration.workers import bounded, wait_until
from tests.servers import AmqpCleanup, RabbitMQServer

pytestmark = pytest.mark.integration

HELD = "3"


async def queue_counts(server: RabbitMQServer, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of ``queue``, as rabbitmqctl reports them."""
    listed = await server.actl(
        "list_queues", "name", "messages_ready", "messages_unacknowledged", "--quiet"
    )
    for line in listed.stdout.splitlines():
        name, ready, unacked = line.split("\t")
        if name == queue:
            return int(ready), int(unacked)
    raise AssertionError(f"queue {queue} not listed:\n{listed.stdout}")


async def consumers_of_a_queue_holding(
    connection: AbstractRobustConnection, queue: str, count: int
) -> Consumers:
    """Declare quorum queue ``queue`` holding messages ``"0"`` .. ``str(count - 1)``; consumers
    on a channel of their own, with room for all of them in flight."""
    publishing = await connection.channel(publisher_confirms=True)
    await publishing.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
    for n in range(count):
        await publishing.default_exchange.publish(aio_pika.Message(str(n).encode()), queue)
    channel = await connection.channel()
    assert isinstance(channel, AbstractRobustChannel)
    await channel.set_qos(prefetch_count=2 * count)
    return Consumers(channel, "test broker", always_publishable)


async def always_publishable() -> bool:
    return True


async def test_finished_deliveries_are_acked_around_one_still_handled_and_one_given_back(
    private_rabbitmq: RabbitMQServer, namespace: str, amqp_cleanup: AmqpCleanup
) -> None:
    queue = amqp_cleanup.queue(f"{namespace}.acks")
    connection = await aio_pika.connect_robust(private_rabbitmq.amqp_url)
    try:
        consumers = await consumers_of_a_queue_holding(connection, queue, 10)
        release = asyncio.Event()
        seen: list[str] = []

        async def on_delivery(message: DeliveredMessage) -> None:
            acknowledgements = consumers.acknowledgements(message)
            tag = message.delivery_tag
            assert tag is not None
            acknowledgements.received(tag)
            body = message.body.decode()
            seen.append(body)
            if body == HELD and len([b for b in seen if b == HELD]) == 1:
                await release.wait()
                await acknowledgements.requeue(tag)
            else:
                acknowledgements.ack(tag)

        await consumers.consume(queue, on_delivery)

        async def others_acked() -> bool:
            return await queue_counts(private_rabbitmq, queue) == (0, 1)

        # The nine others are acked while the fourth is held; no ack covered the held one.
        await wait_until(others_acked, timeout=30, what="the nine others are acked")
        assert sorted(seen) == [str(n) for n in range(10)]

        release.set()

        async def all_acked() -> bool:
            return await queue_counts(private_rabbitmq, queue) == (0, 0)

        await wait_until(all_acked, timeout=30, what="the given-back delivery is handled again")
        assert seen.count(HELD) == 2
        assert len(seen) == 11
        await consumers.close()
    finally:
        await bounded(connection.close(), "closing the test's AMQP connection")


async def test_deliveries_finished_at_close_are_acked_not_delivered_again(
    private_rabbitmq: RabbitMQServer, namespace: str, amqp_cleanup: AmqpCleanup
) -> None:
    queue = amqp_cleanup.queue(f"{namespace}.close")
    connection = await aio_pika.connect_robust(private_rabbitmq.amqp_url)
    try:
        consumers = await consumers_of_a_queue_holding(connection, queue, 5)
        finished = asyncio.Event()
        handled: list[str] = []

        async def on_delivery(message: DeliveredMessage) -> None:
            tag = message.delivery_tag
            assert tag is not None
            acknowledgements = consumers.acknowledgements(message)
            acknowledgements.received(tag)
            handled.append(message.body.decode())
            acknowledgements.ack(tag)
            if len(handled) == 5:
                finished.set()

        await consumers.consume(queue, on_delivery)
        await asyncio.wait_for(finished.wait(), timeout=30)
        await consumers.close()  # at once: the acks have not gone out yet
    finally:
        await bounded(connection.close(), "closing the test's AMQP connection")

    # Had the acks been dropped, closing the connection would have put the five back, and they
    # would come before a message published now.
    connection = await aio_pika.connect_robust(private_rabbitmq.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(aio_pika.Message(b"after"), queue)
        declared = await channel.declare_queue(queue, passive=True)
        received: list[str] = []
        async with declared.iterator() as messages:
            async for message in messages:
                await message.ack()
                received.append(message.body.decode())
                if received[-1] == "after":
                    break
        assert received == ["after"]
    finally:
        await bounded(connection.close(), "closing the test's AMQP connection")

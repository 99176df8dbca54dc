"""Plugging into a RabbitMQ you operate: with ``dead_letter_by_policy``, the dead-letter exchange
and the delivery limit of the partition queues come from a RabbitMQ policy, as the README shows.
Without it the declared dead-letter exchange overrides the policy's (a policy's delivery limit
lower than the declared one applies either way)."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from tests.integration.apps import COUNTER_TYPE, register_counter
from tests.integration.workers import (
    RuntimePool,
    runtimes_fixture,  # noqa: F401
)
from tests.servers import AmqpCleanup, RabbitMQServer

pytestmark = pytest.mark.integration


async def _nack_until_gone(url: str, queue_name: str, times: int) -> int:
    """Consume the queue's one message and requeue it, ``times`` times or until it stops
    coming back (a quorum queue with single-active-consumer refuses basic.get); returns how
    often it came."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        taken = 0
        async with queue.iterator() as messages:
            while taken < times:
                try:
                    message = await asyncio.wait_for(messages.__anext__(), timeout=3)
                except TimeoutError:
                    break
                taken += 1
                await message.nack(requeue=True)
        return taken


async def _dead_letters(url: str, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        found = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            found.append(message)
        return found


@pytest.mark.parametrize("by_policy", [True, False], ids=["by-policy", "declared"])
async def test_a_policy_sets_dead_lettering_when_the_runtime_leaves_it_open(
    by_policy: bool,
    private_rabbitmq: RabbitMQServer,
    runtimes: RuntimePool,
    namespace: str,
    amqp_cleanup: AmqpCleanup,
) -> None:
    # A worker declares the topology and leaves (nobody consumes the partition afterwards).
    worker = await runtimes.start(register_counter, partitions=1, dead_letter_by_policy=by_policy)
    await runtimes.stop(worker)
    partition = amqp_cleanup.queue(f"{namespace}.agent.{COUNTER_TYPE}.0")
    for suffix in ("events", "direct", "replies", "dlx", "ops-dlx"):
        amqp_cleanup.exchange(f"{namespace}.{suffix}")
    ours, operators = amqp_cleanup.queue(f"{namespace}.dead-letter"), f"{namespace}.ops-dead"
    url = private_rabbitmq.amqp_url
    connection = await aio_pika.connect(url)
    async with connection:  # the operator's own dead-letter exchange and queue
        channel = await connection.channel()
        exchange = await channel.declare_exchange(f"{namespace}.ops-dlx", "fanout")
        await (await channel.declare_queue(amqp_cleanup.queue(operators))).bind(exchange)
    policy = f'{{"dead-letter-exchange": "{namespace}.ops-dlx", "delivery-limit": 1}}'
    await private_rabbitmq.actl(
        "set_policy", f"{namespace}-limits", rf"^{namespace}\.agent\.", policy,
        "--apply-to", "queues",
    )  # fmt: skip
    try:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.default_exchange.publish(
                aio_pika.Message(b"{}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=partition,
            )
        taken = await _nack_until_gone(url, partition, times=6)
        in_ours, in_operators = await _dead_letters(url, ours), await _dead_letters(url, operators)
    finally:
        await private_rabbitmq.actl("clear_policy", f"{namespace}-limits")

    assert taken == 2  # the policy's limit of 1: two deliveries, then dead-lettered by the broker
    dead = in_operators if by_policy else in_ours
    assert (len(in_ours), len(in_operators)) == ((0, 1) if by_policy else (1, 0))
    assert dead[0].headers["x-first-death-reason"] == "delivery_limit"

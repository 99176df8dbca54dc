"""Consuming queues on a robust channel, again after every reconnect.

Consumers are registered on the channel's AMQP (aiormq) channel: each delivery reaches its
callback as it arrived, in the task aiormq starts for it, without an aio-pika message built
around it and a second task. When the connection comes back after a broker restart or a network
cut, the robust channel reopens and every consumer still wanted is registered again, with the
same tag and options (a queue that aio-pika did not declare on this channel would otherwise be
left without its consumer).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import aiormq
from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import DeliveredMessage

logger = logging.getLogger("agnext_broker")

Callback = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class _Consumer:
    queue: str
    callback: Callback
    no_ack: bool
    exclusive: bool


class Consumers:
    """The consumers of one robust channel."""

    def __init__(self, channel: AbstractRobustChannel) -> None:
        self._channel = channel
        self._wanted: dict[str, _Consumer] = {}  # by consumer tag
        channel.reopen_callbacks.add(self._consume_again)

    async def consume(
        self, queue: str, callback: Callback, *, no_ack: bool = False, exclusive: bool = False
    ) -> str:
        """Start consuming ``queue``; returns the consumer tag."""
        tag = f"agnext.{uuid.uuid4().hex}"
        consumer = _Consumer(queue, callback, no_ack, exclusive)
        self._wanted[tag] = consumer
        try:
            await self._register(tag, consumer)
        except BaseException:
            self._wanted.pop(tag, None)
            raise
        return tag

    async def cancel(self, tag: str, timeout: float | None = None) -> None:
        """Stop consuming (deliveries already received stay to be handled and settled)."""
        self._wanted.pop(tag, None)
        channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
        if tag in channel.consumers:
            await channel.basic_cancel(tag, timeout=timeout)

    async def _register(self, tag: str, consumer: _Consumer) -> None:
        channel = await self._channel.get_underlay_channel()
        await channel.basic_consume(
            consumer.queue,
            consumer.callback,
            no_ack=consumer.no_ack,
            exclusive=consumer.exclusive,
            consumer_tag=tag,
        )

    async def _consume_again(self, *_: Any) -> None:
        for tag, consumer in list(self._wanted.items()):
            try:
                await self._register(tag, consumer)
                logger.info("consuming %s again after a reconnect", consumer.queue)
            except Exception as e:
                logger.error("could not consume %s again after a reconnect: %s", consumer.queue, e)


async def ack(message: DeliveredMessage) -> None:
    """Acknowledge a delivery (on the channel it came on; after a reconnect that fails, and the
    broker delivers the message again)."""
    assert message.delivery_tag is not None
    await message.channel.basic_ack(message.delivery_tag, wait=False)


async def requeue(message: DeliveredMessage) -> None:
    """Give a delivery back to its queue."""
    assert message.delivery_tag is not None
    await message.channel.basic_nack(message.delivery_tag, requeue=True, wait=False)

"""Consuming queues on a robust channel, and settling their deliveries.

Consumers are registered on the channel's AMQP (aiormq) channel: each delivery reaches its
callback as it arrived, in the task aiormq starts for it, without an aio-pika message built
around it and a second task.

When the connection comes back after a broker restart or a network cut, the robust channel
reopens without any consumer. A consumer registered with ``restore=True`` (the RPC reply queue)
is registered again, with the same tag and options, once the runtime can publish again (a worker
that takes deliveries it cannot answer only gives them back). The others (partition queues) are
left to their owner, which sees :meth:`Consumers.registered` turn false and consumes again on its
next tick, if it still holds the partition.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, cast

import aiormq
from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import DeliveredMessage

from ....base import ServiceUnavailableError
from .._tasks import cancel_and_wait
from ._acks import Acknowledgements
from ._errors import amqp_errors

logger = logging.getLogger("agnext_broker")

Callback = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class _Consumer:
    queue: str
    callback: Callback
    no_ack: bool
    exclusive: bool
    restore: bool


class Consumers:
    """The consumers of one robust channel.

    Args:
        channel: the consuming channel.
        server: the broker, as shown in errors.
        until_publishable: waits (bounded) until the runtime can publish; consumers restored
            after a reconnect are registered only then.
    """

    def __init__(
        self,
        channel: AbstractRobustChannel,
        server: str,
        until_publishable: Callable[[], Awaitable[bool]],
    ) -> None:
        self._channel = channel
        self._server = server
        self._until_publishable = until_publishable
        self._wanted: dict[str, _Consumer] = {}  # by consumer tag
        self._acknowledgements: dict[aiormq.abc.AbstractChannel, Acknowledgements] = {}
        self._restoring: asyncio.Task[None] | None = None
        self.requeued = 0  # deliveries given back to their queues
        channel.reopen_callbacks.add(self._on_reopen)

    @property
    def channel(self) -> AbstractRobustChannel:
        return self._channel

    def acknowledgements(self, message: DeliveredMessage) -> Acknowledgements:
        """Where to settle ``message`` (it is settled on the channel that delivered it)."""
        acknowledgements = self._acknowledgements.get(message.channel)
        if acknowledgements is None:
            for channel in [c for c in self._acknowledgements if c.is_closed]:
                self._acknowledgements.pop(channel).stop()
            acknowledgements = Acknowledgements(message.channel, self._count_requeue)
            self._acknowledgements[message.channel] = acknowledgements
        return acknowledgements

    def _count_requeue(self) -> None:
        self.requeued += 1

    async def close(self) -> None:
        """Send the acks of finished deliveries, then stop settling."""
        await cancel_and_wait([self._restoring])
        self._restoring = None
        for acknowledgements in self._acknowledgements.values():
            await acknowledgements.close()
        self._acknowledgements.clear()

    async def consume(
        self,
        queue: str,
        callback: Callback,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        restore: bool = False,
        answer_within: float | None = None,
    ) -> str:
        """Start consuming ``queue``; returns the consumer tag.

        Raises:
            ServiceUnavailableError: the channel is closed or the broker did not answer.
            AccessRefusedError: the broker refused (another exclusive consumer, no permission).
        """
        tag = f"agnext.{uuid.uuid4().hex}"
        consumer = _Consumer(queue, callback, no_ack, exclusive, restore)
        self._wanted[tag] = consumer
        try:
            await self._register(tag, consumer, answer_within)
        except BaseException:
            self._wanted.pop(tag, None)
            raise
        return tag

    def registered(self, tag: str) -> bool:
        """Whether the broker delivers to ``tag`` now (false once its channel closed)."""
        if self._channel.is_closed:
            return False
        channel = self._underlay()
        return channel is not None and tag in channel.consumers

    async def cancel(self, tag: str, answer_within: float | None = None) -> None:
        """Stop consuming (deliveries already received stay to be handled and settled)."""
        self._wanted.pop(tag, None)
        channel = self._underlay()
        if channel is None or channel.is_closed or tag not in channel.consumers:
            return
        with amqp_errors(self._server):
            await channel.basic_cancel(tag, timeout=answer_within)

    async def cancel_all(self, tags: Iterable[str], answer_within: float) -> None:
        """Cancel several consumers at once; one that cannot be cancelled is logged."""
        tags = list(tags)
        results = await asyncio.gather(
            *(self.cancel(tag, answer_within) for tag in tags), return_exceptions=True
        )
        for tag, result in zip(tags, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("could not cancel consumer %s: %s", tag, result)

    def _underlay(self) -> aiormq.Channel | None:
        # The robust channel's current AMQP channel, without waiting for a reconnect.
        if self._channel.is_closed:
            return None
        underlay = getattr(self._channel, "_channel", None)
        return None if underlay is None else cast(aiormq.Channel, underlay.channel)

    async def _register(self, tag: str, consumer: _Consumer, answer_within: float | None) -> None:
        channel = self._underlay()
        with amqp_errors(self._server):
            if channel is None:
                raise aiormq.exceptions.ChannelInvalidStateError("the channel is closed")
            await channel.basic_consume(
                consumer.queue,
                consumer.callback,
                no_ack=consumer.no_ack,
                exclusive=consumer.exclusive,
                consumer_tag=tag,
                timeout=answer_within,
            )

    async def _on_reopen(self, *_: Any) -> None:
        # Consumers the runtime does not re-register itself are forgotten: their owner consumes
        # again. The others come back once publishing works, in a task of their own, so that
        # the channel's reopening (and the robust connection) does not wait for it.
        for tag in [t for t, c in self._wanted.items() if not c.restore]:
            del self._wanted[tag]
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.create_task(self._restore())

    async def _restore(self) -> None:
        missing = dict(self._wanted)
        while missing:
            while not await self._until_publishable():
                pass
            for tag, consumer in list(missing.items()):
                if tag not in self._wanted:  # cancelled meanwhile
                    del missing[tag]
                    continue
                try:
                    await self._register(tag, consumer, answer_within=30)
                    del missing[tag]
                    logger.info("consuming %s again after a reconnect", consumer.queue)
                except ServiceUnavailableError as e:
                    logger.warning(
                        "could not consume %s again after a reconnect (%s); trying again",
                        consumer.queue,
                        e,
                    )
            if missing:
                await asyncio.sleep(1.0)

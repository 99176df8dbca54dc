"""Consuming queues on a robust channel, again after every reconnect, and settling deliveries.

Consumers are registered on the channel's AMQP (aiormq) channel: each delivery reaches its
callback as it arrived, in the task aiormq starts for it, without an aio-pika message built
around it and a second task. When the connection comes back after a broker restart or a network
cut, the robust channel reopens and every consumer still wanted is registered again, with the
same tag and options (a queue that aio-pika did not declare on this channel would otherwise be
left without its consumer).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import aiormq
from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import DeliveredMessage

logger = logging.getLogger("agnext_broker")

# How long the ack sender waits after the first finished delivery, so that those finishing
# meanwhile go in the same frame: one write and one frame for the broker instead of several.
ACK_BATCH_SECONDS = 0.002

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
        self._acknowledgements: dict[aiormq.abc.AbstractChannel, Acknowledgements] = {}
        channel.reopen_callbacks.add(self._consume_again)

    def acknowledgements(self, message: DeliveredMessage) -> Acknowledgements:
        """Where to settle ``message`` (it is settled on the channel that delivered it)."""
        acknowledgements = self._acknowledgements.get(message.channel)
        if acknowledgements is None:
            for channel in [c for c in self._acknowledgements if c.is_closed]:
                self._acknowledgements.pop(channel).stop()
            acknowledgements = Acknowledgements(message.channel)
            self._acknowledgements[message.channel] = acknowledgements
        return acknowledgements

    async def close(self) -> None:
        """Send the acks of finished deliveries, then stop settling."""
        for acknowledgements in self._acknowledgements.values():
            await acknowledgements.close()
        self._acknowledgements.clear()

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


class Acknowledgements:
    """Settles the deliveries of one AMQP channel, acking many with one frame where it can.

    Deliveries are registered as they arrive (in delivery tag order: aiormq starts one task per
    delivery, in order, and each registers before its first pause). Acks are sent by one task,
    in order, ``ACK_BATCH_SECONDS`` after the first of them finished: the run of finished
    deliveries at the front goes in one ``multiple`` ack (one frame for the consumer, one settle
    per queue for the broker); a delivery that finishes while an earlier one is still being
    handled is acked alone, so a slow handler never holds back the acks of the others. A
    delivery given back (nack) is settled before any ack that covers its tag is sent.
    """

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel
        self._pending: dict[int, bool] = {}  # delivery tag -> finished (insertion = tag order)
        self._finished_out_of_order = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._sender = asyncio.ensure_future(self._send())

    def received(self, tag: int) -> None:
        self._pending[tag] = False

    def ack(self, tag: int) -> None:
        if self._pending.get(tag) is False:
            self._pending[tag] = True
            if next(iter(self._pending)) != tag:
                self._finished_out_of_order += 1
            self._wakeup.set()

    async def requeue(self, tag: int) -> None:
        """Give the delivery back to its queue now."""
        if self._pending.get(tag) is False:
            try:
                await self.channel.basic_nack(tag, requeue=True, wait=False)
            finally:
                # Only once the nack is queued: no ack covering this tag may go before it.
                self._pending.pop(tag, None)
                self._wakeup.set()

    def settled(self, tag: int) -> bool:
        """Acked (or about to be) or given back."""
        return self._pending.get(tag) is not False

    async def close(self, timeout: float = 5.0) -> None:
        """Send the acks of the deliveries finished by now, and stop."""
        self._closing = True
        self._wakeup.set()
        _, late = await asyncio.wait([self._sender], timeout=timeout)
        if late:  # the connection is stuck: the broker delivers them again
            self.stop()

    def stop(self) -> None:
        """Stop at once (on a closed channel: the broker delivers the unacked ones again)."""
        self._sender.cancel()

    def _take(self) -> list[tuple[int, bool]]:
        """The ack frames to send now: (tag, multiple)."""
        frames: list[tuple[int, bool]] = []
        front: list[int] = []
        for tag, finished in self._pending.items():
            if not finished:
                break
            front.append(tag)
        for tag in front:
            del self._pending[tag]
        if front:
            frames.append((front[-1], len(front) > 1))
        if self._finished_out_of_order:
            alone = [tag for tag, finished in self._pending.items() if finished]
            for tag in alone:
                del self._pending[tag]
                frames.append((tag, False))
            self._finished_out_of_order = 0
        return frames

    async def _send_finished(self) -> None:
        for tag, multiple in self._take():
            await self.channel.basic_ack(tag, multiple=multiple, wait=False)

    async def _send(self) -> None:
        while True:
            await self._wakeup.wait()
            closing = self._closing  # then every delivery has finished: this send is the last
            if not closing:
                await asyncio.sleep(ACK_BATCH_SECONDS)
            self._wakeup.clear()
            try:
                await self._send_finished()
            except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError) as e:
                # The channel closed: the broker delivers its unacknowledged messages again.
                logger.debug("acks on a closed channel dropped: %s", e)
                return
            except Exception:
                logger.exception("sending acks failed; their messages will be delivered again")
            if closing:
                return

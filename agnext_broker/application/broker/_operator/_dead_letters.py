"""The namespace's dead-letter queue, ``<ns>.dead-letter``: read it, send its messages back to
their partitions after a fix, or delete them.

AMQP has no way to read a queue without taking its messages, so each is taken (``basic.get``)
and held unacknowledged; those not sent back or deleted are given back (``nack``, requeue)
at the end, and the broker gives them back by itself if the connection is cut meanwhile. A
quorum queue counts each reading as a delivery (``x-delivery-count``), which matters only if a
policy puts a delivery limit on the dead-letter queue.

Each pass looks at no more messages than the queue held when it began, so a message sent back
that dies again is not sent back twice in one pass.

A message sent back is acknowledged in the dead-letter queue only once the broker confirmed it
in its partition queue: interrupted at any point, nothing is lost. Cut between the confirm and
the acknowledgement, the message is in both queues; sent back again, it keeps its CloudEvents
source and id, and the agent that applied it once does not apply it again (within the dedup
window).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import DeliveryError, PublishError

from ....base import ServiceUnavailableError
from .._amqp import amqp_errors
from ._connections import Connections
from ._errors import NotFoundError
from ._letters import CannotReplay, describe, reason_of, replay_routing_key, replayed
from ._queues import QueueCounter
from ._views import DeadLettersView, DeadLetterView, ReplayResult, Unroutable

# (messages looked at, of how many, sent back so far)
Progress = Callable[[int, int, int], None]


def _quiet(examined: int, total: int, replayed: int) -> None:
    pass


class DeadLetters:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._names = connections.names
        self._server = connections.amqp_server
        self.queue = connections.names.dead_letter_queue

    async def count(self) -> int:
        """Messages in the dead-letter queue now (not counting those someone holds).

        Raises:
            NotFoundError: the queue does not exist (no worker of the namespace ever ran here).
        """
        counter = QueueCounter(self._connections)
        try:
            counts = await counter.counts(self.queue)
        finally:
            await counter.close()
        if counts is None:
            raise NotFoundError(
                f"RabbitMQ at {self._server} has no queue {self.queue}: no worker of namespace "
                f"{self._names.namespace!r} ever ran on this vhost"
            )
        return counts.messages

    async def _open(self) -> tuple[AbstractChannel, AbstractQueue]:
        connection = await self._connections.amqp()
        with amqp_errors(self._server):
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            queue = await channel.get_queue(self.queue, ensure=False)
        return channel, queue

    async def _take(self, queue: AbstractQueue) -> AbstractIncomingMessage | None:
        with amqp_errors(self._server):
            return await queue.get(no_ack=False, fail=False)

    async def _give_back(
        self, channel: AbstractChannel, held: list[AbstractIncomingMessage]
    ) -> None:
        """Requeue what was held, and close the channel (which requeues anything left)."""
        with contextlib.suppress(Exception):  # a channel already gone has given them back
            for message in held:
                await message.nack(requeue=True)
        with contextlib.suppress(Exception):
            await channel.close()

    async def peek(self, reason: str | None = None, limit: int | None = None) -> DeadLettersView:
        """The dead letters (of ``reason``, at most ``limit``), oldest first, all left in the
        queue."""
        total = await self.count()
        channel, queue = await self._open()
        held: list[AbstractIncomingMessage] = []
        letters: list[DeadLetterView] = []
        try:
            while len(held) < total and (limit is None or len(letters) < limit):
                message = await self._take(queue)
                if message is None:
                    break
                held.append(message)
                if reason is None or reason_of(message) == reason:
                    letters.append(describe(message))
        finally:
            await self._give_back(channel, held)
        return DeadLettersView(self.queue, total, tuple(letters))

    async def replay(
        self, reason: str | None = None, limit: int | None = None, progress: Progress = _quiet
    ) -> ReplayResult:
        """Send the dead letters (of ``reason``, at most ``limit``) back to their agents'
        partition queues, each acknowledged here once the broker confirmed it there.

        Raises:
            NotFoundError: no dead-letter queue.
            ServiceUnavailableError, AccessRefusedError: RabbitMQ or Redis failed; what was not
                confirmed yet stays in the dead-letter queue.
        """
        total = await self.count()
        types = await (await self._connections.registry()).agent_types()

        def partitions_of(agent_type: str) -> int | None:
            value = types.get(agent_type)
            return None if value is None else int(value["partitions"])

        channel, queue = await self._open()
        with amqp_errors(self._server):
            direct = await channel.get_exchange(self._names.direct_exchange, ensure=False)
        held: list[AbstractIncomingMessage] = []
        unroutable: list[Unroutable] = []
        examined = sent = 0
        progress(examined, total, sent)
        try:
            while examined < total and (limit is None or sent < limit):
                message = await self._take(queue)
                if message is None:
                    break
                examined += 1
                if reason is not None and reason_of(message) != reason:
                    held.append(message)
                    progress(examined, total, sent)
                    continue
                try:
                    routing_key = replay_routing_key(self._names, message, partitions_of)
                    await self._publish(direct, message, routing_key)
                except CannotReplay as e:
                    unroutable.append(Unroutable(describe(message).message_id, str(e)))
                    held.append(message)
                    progress(examined, total, sent)
                    continue
                with amqp_errors(self._server):
                    await message.ack()
                sent += 1
                progress(examined, total, sent)
        finally:
            await self._give_back(channel, held)
        return ReplayResult(examined, sent, tuple(unroutable), await self.count())

    async def _publish(
        self, exchange: AbstractExchange, message: AbstractIncomingMessage, routing_key: str
    ) -> None:
        """Publish and wait for the broker's confirm.

        Raises:
            CannotReplay: no queue is bound for the routing key (the broker returned it).
            ServiceUnavailableError: the broker refused it (nack) or could not be reached.
        """
        with amqp_errors(self._server):
            try:
                await exchange.publish(replayed(message), routing_key, mandatory=True)
            except PublishError:
                raise CannotReplay(
                    f"no queue of {exchange.name} takes routing key {routing_key!r} (the agent "
                    "type's queues were deleted?)"
                ) from None
            except DeliveryError as e:
                raise ServiceUnavailableError(
                    f"RabbitMQ at {self._server} refused to take a message back (nack): a "
                    "partition queue is full (max-length with reject-publish) or the broker "
                    "could not store it; it stays in the dead-letter queue"
                ) from e

    async def purge(self, reason: str | None = None) -> int:
        """Delete the dead letters (of ``reason``); returns how many.

        Raises:
            NotFoundError: no dead-letter queue.
        """
        total = await self.count()
        channel, queue = await self._open()
        if reason is None:
            try:
                with amqp_errors(self._server):
                    purged = await queue.purge()
                return int(purged.message_count or 0)
            finally:
                await self._give_back(channel, [])
        held: list[AbstractIncomingMessage] = []
        deleted = 0
        try:
            for _ in range(total):
                message = await self._take(queue)
                if message is None:
                    break
                if reason_of(message) != reason:
                    held.append(message)
                    continue
                with amqp_errors(self._server):
                    await message.ack()
                deleted += 1
        finally:
            await self._give_back(channel, held)
        return deleted

"""Declares the namespace's exchanges, partition queues and bindings (idempotently)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from ....base import Subscription
from .._names import Names
from .._routing import direct_binding, subscription_binding
from .._settings import BrokerSettings
from ._errors import amqp_errors


@dataclass(frozen=True)
class QueueCounts:
    """What the broker says of a queue: messages ready (not delivered), and consumers (a quorum
    queue with single-active-consumer counts only its active one)."""

    messages: int
    consumers: int


class Topology:
    def __init__(
        self, channel: AbstractChannel, names: Names, settings: BrokerSettings, server: str
    ) -> None:
        self._channel = channel
        self._names = names
        self._settings = settings
        self._server = server
        self._exchanges: dict[str, AbstractExchange] = {}
        self._queues: dict[str, AbstractQueue] = {}

    @property
    def events(self) -> AbstractExchange:
        return self._exchanges[self._names.events_exchange]

    @property
    def direct(self) -> AbstractExchange:
        return self._exchanges[self._names.direct_exchange]

    async def counts(self, queue: str, channel: AbstractChannel | None = None) -> QueueCounts:
        """The queue's counts, asked on ``channel`` (default: the topology's own). Asked on the
        channel that consumes the queue, the answer comes after every delivery the broker sent
        that channel before it."""
        with amqp_errors(self._server):
            # On the AMQP channel: aio-pika's robust channel would keep every queue object it
            # declared, to declare it again after a reconnect.
            underlay = await (channel or self._channel).get_underlay_channel()
            result = await underlay.queue_declare(queue, passive=True, timeout=30)
        return QueueCounts(result.message_count or 0, result.consumer_count or 0)

    async def declare_reply_queue(self, name: str, channel: AbstractChannel) -> None:
        """One process's RPC reply queue (exclusive: it goes with the connection), declared on
        the robust ``channel`` that consumes it, which declares and binds it again after a
        reconnect. It is bound to the namespace's reply exchange under its own name, so that
        responses reach it without the default exchange (whose write permission would let a
        user publish to every queue of the vhost)."""
        with amqp_errors(self._server):
            queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
            await queue.bind(self._names.reply_exchange, routing_key=name)

    async def declare_base(self) -> None:
        with amqp_errors(self._server):
            await self._declare_base()

    async def _declare_base(self) -> None:
        names = self._names
        for name in (names.events_exchange, names.direct_exchange):
            self._exchanges[name] = await self._channel.declare_exchange(
                name, ExchangeType.TOPIC, durable=True
            )
        self._exchanges[names.reply_exchange] = await self._channel.declare_exchange(
            names.reply_exchange, ExchangeType.DIRECT, durable=True
        )
        dlx = await self._channel.declare_exchange(
            names.dead_letter_exchange, ExchangeType.FANOUT, durable=True
        )
        self._exchanges[names.dead_letter_exchange] = dlx
        dead_letters = await self._channel.declare_queue(
            names.dead_letter_queue, durable=True, arguments=self._queue_type_arguments()
        )
        await dead_letters.bind(dlx)

    def _queue_type_arguments(self) -> dict[str, Any]:
        if self._settings.queue_type == "quorum":
            return {"x-queue-type": "quorum"}
        return {}

    def partition_arguments(self) -> dict[str, Any]:
        arguments = self._queue_type_arguments()
        quorum = self._settings.queue_type == "quorum"
        if quorum:
            # A quorum queue accepts a second consumer silently; single-active-consumer makes
            # the broker deliver to one consumer at a time even if two workers subscribe.
            arguments["x-single-active-consumer"] = True
        if not self._settings.dead_letter_by_policy:
            arguments["x-dead-letter-exchange"] = self._names.dead_letter_exchange
            if quorum:
                arguments["x-delivery-limit"] = self._settings.delivery_limit
        return arguments

    async def partition_queue(self, agent_type: str, partition: int) -> AbstractQueue:
        name = self._names.partition_queue(agent_type, partition)
        queue = self._queues.get(name)
        if queue is None:
            with amqp_errors(self._server):
                queue = await self._channel.declare_queue(
                    name, durable=True, arguments=self.partition_arguments()
                )
            self._queues[name] = queue
        return queue

    async def declare_type(self, agent_type: str, partitions: int) -> None:
        """The type's partition queues, bound to the direct exchange."""
        for partition in range(partitions):
            queue = await self.partition_queue(agent_type, partition)
            with amqp_errors(self._server):
                await queue.bind(self.direct, direct_binding(agent_type, partition, partitions))

    async def bind(self, subscription: Subscription, agent_type: str, partitions: int) -> None:
        for partition in range(partitions):
            queue = await self.partition_queue(agent_type, partition)
            binding = subscription_binding(subscription, partition, partitions)
            with amqp_errors(self._server):
                await queue.bind(self.events, binding)

    async def unbind(self, subscription: Subscription, agent_type: str, partitions: int) -> None:
        for partition in range(partitions):
            queue = await self.partition_queue(agent_type, partition)
            binding = subscription_binding(subscription, partition, partitions)
            with amqp_errors(self._server):
                await queue.unbind(self.events, binding)

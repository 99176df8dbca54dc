"""Declares the namespace's exchanges, partition queues and bindings (idempotently)."""

from __future__ import annotations

from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from ...base import Subscription
from ._names import Names
from ._routing import direct_binding, subscription_binding
from ._settings import BrokerSettings


class Topology:
    def __init__(self, channel: AbstractChannel, names: Names, settings: BrokerSettings) -> None:
        self._channel = channel
        self._names = names
        self._settings = settings
        self._exchanges: dict[str, AbstractExchange] = {}
        self._queues: dict[str, AbstractQueue] = {}

    @property
    def events(self) -> AbstractExchange:
        return self._exchanges[self._names.events_exchange]

    @property
    def direct(self) -> AbstractExchange:
        return self._exchanges[self._names.direct_exchange]

    @property
    def channel(self) -> AbstractChannel:
        return self._channel

    async def declare_base(self) -> None:
        names = self._names
        for name in (names.events_exchange, names.direct_exchange):
            self._exchanges[name] = await self._channel.declare_exchange(
                name, ExchangeType.TOPIC, durable=True
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
            queue = await self._channel.declare_queue(
                name, durable=True, arguments=self.partition_arguments()
            )
            self._queues[name] = queue
        return queue

    async def declare_type(self, agent_type: str, partitions: int) -> None:
        """The type's partition queues, bound to the direct exchange."""
        for partition in range(partitions):
            queue = await self.partition_queue(agent_type, partition)
            await queue.bind(self.direct, direct_binding(agent_type, partition, partitions))

    async def bind(self, subscription: Subscription, agent_type: str, partitions: int) -> None:
        for partition in range(partitions):
            queue = await self.partition_queue(agent_type, partition)
            await queue.bind(self.events, subscription_binding(subscription, partition, partitions))

    async def unbind(self, subscription: Subscription, agent_type: str, partitions: int) -> None:
        for partition in range(partitions):
            queue = await self.partition_queue(agent_type, partition)
            await queue.unbind(
                self.events, subscription_binding(subscription, partition, partitions)
            )

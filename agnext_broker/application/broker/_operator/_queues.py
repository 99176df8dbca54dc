"""Queue counts for an operator, on a channel of its own: a queue that does not exist is
``None`` (the broker closes the channel that asked; the next question gets a new one)."""

from __future__ import annotations

import contextlib

from aio_pika.abc import AbstractChannel

from ....base import TopologyError
from .._amqp import QueueCounts, Topology, amqp_errors
from ._connections import Connections


class QueueCounter:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._channel: AbstractChannel | None = None

    async def counts(self, queue: str) -> QueueCounts | None:
        """The queue's ready messages and consumers; ``None`` if it does not exist.

        Raises:
            ServiceUnavailableError, AccessRefusedError: RabbitMQ could not answer.
        """
        connections = self._connections
        if self._channel is None or self._channel.is_closed:
            connection = await connections.amqp()
            with amqp_errors(connections.amqp_server):
                self._channel = await connection.channel()
        topology = Topology(
            self._channel, connections.names, connections.settings, connections.amqp_server
        )
        try:
            return await topology.counts(queue, self._channel)
        except TopologyError:  # NOT_FOUND: the broker closed the channel
            await self.close()
            return None

    async def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
            self._channel = None

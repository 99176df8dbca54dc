"""The AMQP side of a broker runtime: connections, channels, topology and publishing.

Publishing uses its own connection, with publisher confirms and ``mandatory`` returns raised,
and persistent messages (aio-pika's defaults are neither). Consuming has another connection, so
a slow consumer never holds up confirms.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aio_pika
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import PublishError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from ...base import AgnextError, UndeliverableException
from ._names import HEADER_DEAD_DETAIL, HEADER_DEAD_QUEUE, HEADER_DEAD_REASON, Names
from ._settings import BrokerSettings, redact
from ._topology import Topology
from ._wire import Envelope

logger = logging.getLogger("agnext_broker")


class MessageTooLargeError(AgnextError, ValueError):
    """The encoded message is larger than the runtime's ``max_message_bytes``."""


async def connect_amqp(url: str, name: str, timeout: float = 30.0) -> AbstractRobustConnection:
    """A robust connection (it reconnects by itself); the first connect is retried for
    ``timeout`` seconds."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.2, max=2.0),
        retry=retry_if_exception_type((ConnectionError, OSError, aio_pika.exceptions.AMQPError)),
        reraise=True,
    ):
        with attempt:
            return await aio_pika.connect_robust(url, client_properties={"connection_name": name})
    raise AssertionError("unreachable")  # pragma: no cover


class Transport:
    def __init__(self, settings: BrokerSettings, names: Names) -> None:
        self._settings = settings
        self._names = names
        self._connections: list[AbstractRobustConnection] = []
        self.publish_channel: AbstractChannel
        self.consume_channel: AbstractChannel
        self.topology: Topology

    async def open(self) -> None:
        label = f"agnext-{self._names.namespace}-{self._settings.worker_id}"
        try:
            publishing = await connect_amqp(self._settings.amqp_url, f"{label}-publish")
            consuming = await connect_amqp(self._settings.amqp_url, f"{label}-consume")
        except Exception as e:
            raise ConnectionError(
                f"cannot connect to RabbitMQ at {redact(self._settings.amqp_url)}: {e}; check "
                "AGNEXT_AMQP_URL and that the broker is running"
            ) from e
        self._connections = [publishing, consuming]
        self.publish_channel = await publishing.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self.consume_channel = await consuming.channel()
        await self.consume_channel.set_qos(prefetch_count=self._settings.prefetch)
        admin_channel = await publishing.channel()
        self.topology = Topology(admin_channel, self._names, self._settings)
        await self.topology.declare_base()
        get = self.publish_channel.get_exchange
        self._events = await get(self._names.events_exchange, ensure=False)
        self._direct = await get(self._names.direct_exchange, ensure=False)
        self._dead_letters = await get(self._names.dead_letter_exchange, ensure=False)

    async def close(self) -> None:
        for connection in reversed(self._connections):
            await connection.close()
        self._connections = []

    def _message(self, envelope: Envelope, **properties: Any) -> Message:
        encoded = envelope.to_amqp()
        if len(encoded.body) > self._settings.max_message_bytes:
            raise MessageTooLargeError(
                f"{envelope.type} message of {len(encoded.body)} bytes is larger than the "
                f"limit of {self._settings.max_message_bytes} bytes (max_message_bytes)."
            )
        return Message(
            encoded.body,
            headers=dict(encoded.headers),
            content_type=encoded.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=envelope.id,
            **properties,
        )

    async def send(self, envelope: Envelope, routing_key: str, reply_to: str) -> None:
        """Publish a direct message; a recipient type with no queue fails at once.

        Raises:
            UndeliverableException: no queue is bound for the recipient's type.
            MessageTooLargeError: the message is over the size limit.
        """
        message = self._message(envelope, reply_to=reply_to, correlation_id=envelope.correlation)
        try:
            await self._direct.publish(message, routing_key, mandatory=True)
        except PublishError as e:
            recipient = envelope.recipient
            raise UndeliverableException(
                f"No queue of agent type {recipient.type if recipient else '?'!r} exists in "
                f"namespace {self._names.namespace!r}: no worker ever hosted it."
            ) from e

    async def publish(self, envelope: Envelope, routing_key: str) -> None:
        """Publish an event (an event no subscription matches is not an error)."""
        message = self._message(envelope)
        await self._events.publish(message, routing_key, mandatory=False)

    async def reply(self, envelope: Envelope, reply_to: str) -> None:
        message = self._message(envelope, correlation_id=envelope.correlation)
        await self.publish_channel.default_exchange.publish(message, reply_to, mandatory=False)

    async def dead_letter(
        self,
        body: bytes,
        headers: Mapping[str, Any] | None,
        content_type: str | None,
        *,
        reason: str,
        detail: str,
        queue: str,
    ) -> None:
        """Put a copy of a message in the namespace's dead-letter queue, with why."""
        dead_headers = {
            **(headers or {}),
            HEADER_DEAD_REASON: reason,
            HEADER_DEAD_DETAIL: detail[:1000],
            HEADER_DEAD_QUEUE: queue,
        }
        message = Message(
            body,
            headers=dead_headers,
            content_type=content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
        )
        await self._dead_letters.publish(message, "", mandatory=False)
        logger.warning(
            "dead-lettered a message from %s: %s (%s)",
            queue,
            reason,
            detail[:300],
            extra={"reason": reason, "queue": queue},
        )

"""The AMQP side of a broker runtime: connections, channels, topology and publishing.

Publishing uses its own connection, with publisher confirms and ``mandatory`` returns raised,
and persistent messages (aio-pika's defaults are neither). Consuming has another connection, so
a slow consumer never holds up confirms.

Messages are published on the channel's aiormq channel, with properties built directly: an
aio-pika ``Message`` costs more than the rest of the publish, and its ``publish`` holds the
channel's lock until the frames are written, so concurrent publishes wait for each other's
writes; each publish here still waits for its confirm.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import PublishError
from aiormq import spec
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from ...base import AgnextError, UndeliverableException
from ._consumers import Consumers
from ._names import HEADER_DEAD_DETAIL, HEADER_DEAD_QUEUE, HEADER_DEAD_REASON, Names
from ._settings import BrokerSettings, redact
from ._topology import Topology
from ._wire import Envelope

logger = logging.getLogger("agnext_broker")

PERSISTENT = 2  # AMQP delivery mode


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
        self.consume_channel: AbstractRobustChannel
        self.consumers: Consumers
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
        self.consume_channel = cast(AbstractRobustChannel, await consuming.channel())
        await self.consume_channel.set_qos(prefetch_count=self._settings.prefetch)
        self.consumers = Consumers(self.consume_channel)
        admin_channel = await publishing.channel()
        self.topology = Topology(admin_channel, self._names, self._settings)
        await self.topology.declare_base()

    async def close(self) -> None:
        if self._connections:
            await self.consumers.close()
        for connection in reversed(self._connections):
            await connection.close()
        self._connections = []

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.Basic.Properties,
        *,
        mandatory: bool,
    ) -> None:
        channel = cast(aiormq.Channel, await self.publish_channel.get_underlay_channel())
        await channel.basic_publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            properties=properties,
            mandatory=mandatory,
            wait=False,  # do not hold the channel until the frames are written; await the confirm
        )

    async def _publish_envelope(
        self,
        exchange: str,
        routing_key: str,
        envelope: Envelope,
        *,
        mandatory: bool,
        reply_to: str | None = None,
    ) -> None:
        encoded = envelope.to_amqp()
        if len(encoded.body) > self._settings.max_message_bytes:
            raise MessageTooLargeError(
                f"{envelope.type} message of {len(encoded.body)} bytes is larger than the "
                f"limit of {self._settings.max_message_bytes} bytes (max_message_bytes)."
            )
        properties = spec.Basic.Properties(
            content_type=encoded.content_type,
            headers=dict(encoded.headers),
            delivery_mode=PERSISTENT,
            message_id=envelope.id,
            correlation_id=envelope.correlation,
            reply_to=reply_to,
        )
        await self._publish(exchange, routing_key, encoded.body, properties, mandatory=mandatory)

    async def send(self, envelope: Envelope, routing_key: str, reply_to: str) -> None:
        """Publish a direct message; a recipient type with no queue fails at once.

        Raises:
            UndeliverableException: no queue is bound for the recipient's type.
            MessageTooLargeError: the message is over the size limit.
        """
        try:
            await self._publish_envelope(
                self._names.direct_exchange,
                routing_key,
                envelope,
                mandatory=True,
                reply_to=reply_to,
            )
        except PublishError as e:
            recipient = envelope.recipient
            raise UndeliverableException(
                f"No queue of agent type {recipient.type if recipient else '?'!r} exists in "
                f"namespace {self._names.namespace!r}: no worker ever hosted it."
            ) from e

    async def publish(self, envelope: Envelope, routing_key: str) -> None:
        """Publish an event (an event no subscription matches is not an error)."""
        await self._publish_envelope(
            self._names.events_exchange, routing_key, envelope, mandatory=False
        )

    async def reply(self, envelope: Envelope, reply_to: str) -> None:
        await self._publish_envelope("", reply_to, envelope, mandatory=False)

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
        properties = spec.Basic.Properties(
            content_type=content_type, headers=dead_headers, delivery_mode=PERSISTENT
        )
        await self._publish(self._names.dead_letter_exchange, "", body, properties, mandatory=False)
        logger.warning(
            "dead-lettered a message from %s: %s (%s)",
            queue,
            reason,
            detail[:300],
            extra={"reason": reason, "queue": queue},
        )

"""The AMQP side of a broker runtime: connections, channels, topology and publishing.

Publishing uses its own connection, with publisher confirms and ``mandatory`` returns raised,
and persistent messages (aio-pika's defaults are neither). Consuming has another connection, so
a slow consumer never holds up confirms.

Every publish is bounded: it waits for a free slot among ``max_in_flight_publishes`` (the
messages published and not yet confirmed), for the connection if it is down, and for the
broker's confirm, all before the caller's deadline; a publish cut off by a lost connection is
sent again, with the same message id, until then (receivers deduplicate by id). Past the
deadline it raises :class:`PublishTimeoutError`.

Messages are published on the channel's aiormq channel, with properties built directly: an
aio-pika ``Message`` costs more than the rest of the publish, and its ``publish`` holds the
channel's lock until the frames are written, so concurrent publishes wait for each other's
writes; each publish here still waits for its confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import PublishError
from aiormq import spec

from ....base import (
    AccessRefusedError,
    MessageTooLargeError,
    PublishTimeoutError,
    ServiceUnavailableError,
    UndeliverableException,
)
from .._gate import Gate, Place
from .._names import HEADER_DEAD_DETAIL, HEADER_DEAD_QUEUE, HEADER_DEAD_REASON, Names
from .._settings import BrokerSettings, redact
from .._tasks import CLOSE_BOUND
from .._tls import amqp_tls
from .._wire import Envelope
from ._connection import connect_amqp
from ._consumers import Consumers
from ._errors import amqp_errors
from ._topology import Topology

logger = logging.getLogger("agnext_broker")

PERSISTENT = 2  # AMQP delivery mode
_REOPEN_PAUSE = 0.01  # the reopened channel follows its reconnected connection by ~10 ms


class Transport:
    def __init__(
        self,
        settings: BrokerSettings,
        names: Names,
        on_reconnect: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._on_reconnect = on_reconnect
        self._names = names
        self.server = redact(settings.amqp)
        self._connections: list[AbstractRobustConnection] = []
        self._slots = Gate(settings.max_in_flight_publishes)
        self.publish_channel: AbstractRobustChannel
        self.consume_channel: AbstractRobustChannel
        self.consumers: Consumers
        self.topology: Topology

    @property
    def in_flight(self) -> int:
        """Messages published and not yet confirmed (or about to be)."""
        return self._slots.taken

    @property
    def connected(self) -> bool:
        """Whether both the publishing and the consuming channels are open now."""
        return self.publishable and not self.consume_channel.is_closed

    @property
    def publishable(self) -> bool:
        """Whether the publishing channel is open now."""
        return bool(self._connections) and not self.publish_channel.is_closed

    async def until_publishable(self, at_most: float = 5.0) -> bool:
        """Wait (``at_most`` seconds) until the publishing channel is open."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        while not self.publishable:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def open(self) -> None:
        """Connect, open the channels and declare the namespace's exchanges.

        Raises:
            AccessRefusedError, ServiceUnavailableError: as :func:`connect_amqp`.
        """
        settings = self._settings
        label = f"agnext-{self._names.namespace}-{settings.worker_id}"
        url, timeout = settings.amqp, settings.connect_timeout
        tls = amqp_tls(settings)
        publishing = await connect_amqp(url, self.server, f"{label}-publish", timeout, **tls)
        self._connections = [publishing]
        try:
            consuming = await connect_amqp(url, self.server, f"{label}-consume", timeout, **tls)
            self._connections.append(consuming)
            for connection in self._connections:
                connection.reconnect_callbacks.add(self._reconnected)
            with amqp_errors(self.server):
                self.publish_channel = await publishing.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                self.consume_channel = await consuming.channel()
                await self.consume_channel.set_qos(prefetch_count=settings.prefetch)
                admin_channel: AbstractChannel = await publishing.channel()
            self.consumers = Consumers(self.consume_channel, self.server, self.until_publishable)
            self.topology = Topology(admin_channel, self._names, settings, self.server)
            await self.topology.declare_base()
        except BaseException:
            await self.close()
            raise

    def _reconnected(self, *_: Any) -> None:
        logger.info("connected to RabbitMQ at %s again", self.server)
        self._on_reconnect()

    async def close(self) -> None:
        if len(self._connections) == 2:
            await self.consumers.close()
        for connection in reversed(self._connections):
            try:
                async with asyncio.timeout(CLOSE_BOUND):
                    await connection.close()
            except TimeoutError:
                logger.warning(
                    "closing a connection to RabbitMQ at %s took longer than %g s; left as it is",
                    self.server,
                    CLOSE_BOUND,
                )
            except Exception as e:  # already broken: nothing left to close cleanly
                logger.debug("closing a connection failed: %s", e)
        self._connections = []

    def slot(self, deadline: float, what: str) -> Place:
        """One of the ``max_in_flight_publishes`` places (``async with``), held until the
        message is confirmed; waits (until ``deadline``) while all are taken. A caller takes
        it before building its message, so that calls waiting their turn hold nothing but
        themselves.

        Raises:
            PublishTimeoutError: no place came free by ``deadline``.
        """

        def timed_out() -> PublishTimeoutError:
            return PublishTimeoutError(
                f"{what} waited for one of the {self._settings.max_in_flight_publishes} "
                "publishes in flight (max_in_flight_publishes) until its deadline"
            )

        return Place(self._slots, deadline, timed_out)

    async def _open_channel(self) -> aiormq.Channel:
        while True:
            channel = await self.publish_channel.get_underlay_channel()  # waits for a reconnect
            if not channel.is_closed:
                return cast(aiormq.Channel, channel)
            await asyncio.sleep(_REOPEN_PAUSE)

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.Basic.Properties,
        *,
        mandatory: bool,
        deadline: float,
        what: str,
    ) -> None:
        """Publish until the broker confirms, or raise at ``deadline`` (``loop.time()``).

        Raises:
            PublishError: the broker returned a ``mandatory`` message (no queue is bound).
            PublishTimeoutError: not confirmed by ``deadline``.
        """
        last_error: BaseException | None = None
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    channel = await self._open_channel()
                    with amqp_errors(self.server):
                        confirmation = await channel.basic_publish(
                            body,
                            exchange=exchange,
                            routing_key=routing_key,
                            properties=properties,
                            mandatory=mandatory,
                            wait=False,  # not holding the channel until written
                        )
                if not isinstance(confirmation, spec.Basic.Nack):
                    return
                last_error = ServiceUnavailableError(
                    f"RabbitMQ at {self.server} refused {what} (nack): a queue is full "
                    "(max-length with reject-publish) or the broker could not store it"
                )
                await asyncio.sleep(0.1)
            except TimeoutError:
                raise PublishTimeoutError(
                    f"RabbitMQ at {self.server} did not confirm {what} in time"
                    + (f" ({last_error})" if last_error else " (the connection is down?)")
                ) from last_error
            except AccessRefusedError:
                raise  # no permission: publishing again would be refused again
            except ServiceUnavailableError as e:
                # The connection or channel went away under the publish: once it is back,
                # publish again (the same message id: receivers apply it once).
                last_error = e
                await asyncio.sleep(_REOPEN_PAUSE)

    def _properties(self, envelope: Envelope, reply_to: str | None) -> tuple[bytes, Any]:
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
        return encoded.body, properties

    def _room(self, deadline: float, what: str, holding: bool) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext() if holding else self.slot(deadline, what)

    async def send(
        self,
        envelope: Envelope,
        routing_key: str,
        reply_to: str,
        deadline: float,
        *,
        holding: bool = False,
    ) -> None:
        """Publish a direct message; a recipient type with no queue fails at once. With
        ``holding``, the caller already holds a :meth:`slot` for it.

        Raises:
            UndeliverableException: no queue is bound for the recipient's type.
            MessageTooLargeError: the message is over the size limit.
            PublishTimeoutError: not confirmed by ``deadline``.
        """
        what = f"the message {envelope.id} to {envelope.recipient}"
        body, properties = self._properties(envelope, reply_to)
        try:
            async with self._room(deadline, what, holding):
                await self._publish(
                    self._names.direct_exchange,
                    routing_key,
                    body,
                    properties,
                    mandatory=True,
                    deadline=deadline,
                    what=what,
                )
        except PublishError as e:
            recipient = envelope.recipient
            raise UndeliverableException(
                f"No queue of agent type {recipient.type if recipient else '?'!r} exists in "
                f"namespace {self._names.namespace!r}: no worker ever hosted it."
            ) from e

    async def publish(
        self, envelope: Envelope, routing_key: str, deadline: float, *, holding: bool = False
    ) -> None:
        """Publish an event (an event no subscription matches is not an error)."""
        topic = envelope.topic
        what = f"the event {envelope.id} to topic {topic.type if topic else '?'}"
        body, properties = self._properties(envelope, None)
        async with self._room(deadline, what, holding):
            await self._publish(
                self._names.events_exchange,
                routing_key,
                body,
                properties,
                mandatory=False,
                deadline=deadline,
                what=what,
            )

    async def reply(self, envelope: Envelope, reply_to: str, deadline: float) -> None:
        """Publish a response to the caller's queue ``reply_to``: through the namespace's reply
        exchange, where every runtime binds its reply queue; a queue not bound there (a caller
        of another client, or of an older version) gets it through the default exchange,
        which needs write permission on ``amq.default``.

        Raises:
            AccessRefusedError: the user may not publish to the exchange it had to take.
            PublishTimeoutError: not confirmed by ``deadline``.
        """
        what = f"the response {envelope.id}"
        body, properties = self._properties(envelope, None)
        async with self.slot(deadline, what):
            try:
                await self._publish(
                    self._names.reply_exchange,
                    reply_to,
                    body,
                    properties,
                    mandatory=True,
                    deadline=deadline,
                    what=what,
                )
                return
            except PublishError:
                logger.debug("%s is not bound to %s", reply_to, self._names.reply_exchange)
            await self._publish(
                "", reply_to, body, properties, mandatory=False, deadline=deadline, what=what
            )

    async def dead_letter(
        self,
        body: bytes,
        headers: Mapping[str, Any] | None,
        content_type: str | None,
        *,
        reason: str,
        detail: str,
        queue: str,
        deadline: float,
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
        what = f"a dead letter from {queue}"
        async with self.slot(deadline, what):
            await self._publish(
                self._names.dead_letter_exchange,
                "",
                body,
                properties,
                mandatory=False,
                deadline=deadline,
                what=what,
            )
        logger.warning(
            "dead-lettered a message from %s: %s (%s)",
            queue,
            reason,
            detail[:300],
            extra={"reason": reason, "queue": queue},
        )

"""How one delivery from a partition queue becomes handled, saved and acknowledged messages.

In the order the broker delivered them, each delivery is decoded and takes its places in its
recipients' turn lines (synchronously, so that order holds); then each turn runs (``_turn.py``),
the responses go out, and only then is the delivery acknowledged. Bad input is dead-lettered
with the reason, and a request among it is answered at once with :class:`MessageRejectedError`,
so its caller does not wait for its timeout; the worker keeps going.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiormq.abc import DeliveredMessage

from ...base import (
    JSON_DATA_CONTENT_TYPE,
    AgentId,
    MessageRejectedError,
    PublishTimeoutError,
    SerializationRegistry,
    ServiceUnavailableError,
    Subscription,
    UnknownPayload,
)
from .._agents import AgentDirectory
from .._turns import Place
from . import _names as n
from ._amqp import Transport
from ._commit import StateMoved
from ._metrics import Metrics
from ._ownership import Delivery, Partition
from ._redis import StoredResponse, dedup_key
from ._remote_errors import error_type_name
from ._retrying import until_available
from ._routing import partition_of
from ._settings import BrokerSettings
from ._turn import DeadLetter, GiveBack, Turn, Turns, turn_id
from ._wire import Envelope, InvalidMessage, decode

logger = logging.getLogger("agnext_broker")

Joined = tuple[Envelope, list[Turn]]


class Deliveries:
    def __init__(
        self,
        *,
        settings: BrokerSettings,
        names: n.Names,
        transport: Transport,
        directory: AgentDirectory,
        serializers: SerializationRegistry,
        turns: Turns,
        metrics: Metrics,
        partitions_of: Callable[[str], int],
        subscriptions: Callable[[], list[Subscription]],
        reload_subscriptions: Callable[[], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._names = names
        self._transport = transport
        self._directory = directory
        self._serializers = serializers
        self._turns = turns
        self._metrics = metrics
        self._partitions_of = partitions_of
        self._subscriptions = subscriptions
        self._reload_subscriptions = reload_subscriptions

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self._settings.publish_timeout

    async def handle(self, part: Partition, message: DeliveredMessage, delivery: Delivery) -> None:
        # Deliveries take their places in the agents' turn lines in the order the broker
        # delivered them: without contention the lock is taken without a pause, and a delivery
        # that must wait (for a subscription reload) holds up those behind it.
        async with part.joining:
            joined = await self._join(part, message)
        if joined is not None:
            await self._process(part, message, delivery, *joined)

    # -- decoding and routing -------------------------------------------------------------------

    async def _join(self, part: Partition, message: DeliveredMessage) -> Joined | None:
        """Decode the delivery and take its places in its recipients' turn lines; ``None`` when
        it needs no handling (acknowledged or dead-lettered here)."""
        envelope: Envelope | None = None
        try:
            if len(message.body) > self._settings.max_message_bytes:
                raise InvalidMessage(
                    n.REASON_TOO_LARGE,
                    f"{len(message.body)} bytes, over max_message_bytes "
                    f"({self._settings.max_message_bytes})",
                )
            properties = message.header.properties
            envelope = decode(properties.headers, properties.content_type, message.body)
            if envelope.kind == n.KIND_CANCEL:
                self._turns.cancel(dedup_key(envelope.source, envelope.correlation or ""))
                self._ack(message)
                return None
            if envelope.kind not in (n.KIND_SEND, n.KIND_PUBLISH, n.KIND_CONTROL):
                raise InvalidMessage(n.REASON_INVALID, f"unexpected kind {envelope.kind!r}")
            self._check_content_type(envelope)
            if envelope.kind == n.KIND_CONTROL:
                payload: Any = json.loads(envelope.data) if envelope.data else None
            else:
                payload = self._serializers.deserialize(
                    envelope.data, type_name=envelope.type, data_content_type=envelope.content_type
                )
            if isinstance(payload, UnknownPayload):
                raise InvalidMessage(
                    n.REASON_UNKNOWN_TYPE, f"no message type {envelope.type!r} is registered here"
                )
            recipients = self._recipients(part.agent_type, envelope)
            if envelope.kind == n.KIND_PUBLISH and not recipients:
                # A wider binding, or a subscription this worker has not heard of yet.
                await until_available(self._reload_subscriptions, "reading the subscriptions")
                recipients = self._recipients(part.agent_type, envelope)
            self._check_partition(part, recipients)
        except (InvalidMessage, ValueError) as e:  # SerializationError is a ValueError
            reason = e.reason if isinstance(e, InvalidMessage) else n.REASON_UNDECODABLE
            await self._reject(part, message, envelope, reason, str(e))
            return None
        if envelope.kind == n.KIND_PUBLISH:  # a publisher does not receive its own event
            recipients = [r for r in recipients if r != envelope.sender]
        if not recipients:
            self._ack(message)
            return None
        turns: list[Turn] = []
        for index, recipient in enumerate(recipients):
            delivery_id = envelope.id if index == 0 else f"{envelope.id}#{index}"
            turn = turn_id(recipient, envelope.source, delivery_id)
            place = Place(self._directory.gate(recipient), turn, envelope.path)
            key = dedup_key(envelope.source, delivery_id)
            turns.append(Turn(recipient, key, envelope, payload, place))
        return envelope, turns

    def _check_content_type(self, envelope: Envelope) -> None:
        """A payload is decoded only by a serializer registered for its content type: one that
        claims another (pickle, say) is refused before anything reads it."""
        content_type = envelope.content_type
        if envelope.kind == n.KIND_CONTROL:
            accepted = content_type == JSON_DATA_CONTENT_TYPE
        else:
            accepted = self._serializers.decodes_content_type(content_type)
        if not accepted:
            raise InvalidMessage(
                n.REASON_UNSUPPORTED_CONTENT_TYPE,
                f"content type {content_type!r} of a {envelope.type!r} message: no serializer "
                "here decodes it (payloads are JSON, or what a serializer added with "
                "add_message_serializer decodes; nothing is ever unpickled)",
            )

    def _recipients(self, agent_type: str, envelope: Envelope) -> list[AgentId]:
        if envelope.kind in (n.KIND_SEND, n.KIND_CONTROL):
            recipient = envelope.recipient
            if recipient is None or recipient.type != agent_type:
                raise InvalidMessage(
                    n.REASON_INVALID, f"direct message without a recipient of {agent_type}"
                )
            return [recipient]
        topic = envelope.topic
        if topic is None:
            raise InvalidMessage(n.REASON_INVALID, "event without agtopictype")
        return [
            subscription.map_to_agent(topic)
            for subscription in self._subscriptions()
            if getattr(subscription, "agent_type", None) == agent_type
            and subscription.is_match(topic)
        ]

    def _check_partition(self, part: Partition, recipients: list[AgentId]) -> None:
        """Per-agent order and single activation hold only if each agent's messages travel
        through its own partition: a message in another partition's queue is refused."""
        partitions = self._partitions_of(part.agent_type)
        for recipient in recipients:
            expected = partition_of(recipient.key, partitions)
            if expected != part.index:
                raise InvalidMessage(
                    n.REASON_MISROUTED,
                    f"{recipient} belongs to partition {expected}, not {part.index}: the routing "
                    "key's hash words do not match the agent key (docs/wire-format.md)",
                )

    # -- handling -------------------------------------------------------------------------------

    async def _process(
        self,
        part: Partition,
        message: DeliveredMessage,
        delivery: Delivery,
        envelope: Envelope,
        turns: list[Turn],
    ) -> None:
        replies: list[asyncio.Task[None]] = []
        reply_to = message.header.properties.reply_to

        def respond(response: StoredResponse | None) -> None:
            if envelope.kind != n.KIND_PUBLISH and response is not None and reply_to:
                replies.append(asyncio.ensure_future(self._reply(envelope, message, response)))

        try:
            unreached = list(reversed(turns))
            try:
                while unreached:
                    turn = unreached.pop()
                    await turn.place.wait()  # gives the place up when cancelled
                    delivery.started = True
                    try:
                        await self._turns.take(turn, respond)
                    finally:
                        turn.place.leave()  # the reply's confirm need not hold up the next turn
            finally:
                for later in unreached:
                    later.place.abandon()  # the places of recipients it will not reach
                await asyncio.gather(*replies)
            self._ack(message)
        except (GiveBack, StateMoved):
            self._metrics.handled.labels(part.agent_type, "requeued").inc()
            await self._requeue(message)
        except DeadLetter as e:
            await self._reject(part, message, envelope, e.reason, e.detail)
        except Exception:
            logger.exception("delivery %s failed; it goes back to the queue", envelope.id)
            self._metrics.handled.labels(part.agent_type, "requeued").inc()
            await self._requeue(message)

    def _ack(self, message: DeliveredMessage) -> None:
        tag = message.delivery_tag
        assert tag is not None
        self._transport.consumers.acknowledgements(message).ack(tag)

    async def _requeue(self, message: DeliveredMessage) -> None:
        tag = message.delivery_tag
        assert tag is not None
        await self._transport.consumers.acknowledgements(message).requeue(tag)

    async def _reply(
        self, request: Envelope, message: DeliveredMessage, stored: StoredResponse
    ) -> None:
        """Send a response; one that cannot be sent in time is logged (the request is saved
        with its response: the caller's retry gets it)."""
        properties = message.header.properties
        assert properties.reply_to is not None
        response = Envelope(
            id=f"{request.id}:response",
            source=str(request.recipient),
            type=stored.type,
            kind=n.KIND_ERROR if stored.error_type else n.KIND_RESPONSE,
            data=stored.data.encode(),
            content_type=stored.content_type,
            sender=request.recipient,
            correlation=request.correlation or properties.correlation_id or request.id,
            error_type=stored.error_type,
        )
        try:
            await self._transport.reply(response, properties.reply_to, self._deadline())
        except (PublishTimeoutError, ServiceUnavailableError) as e:
            logger.warning("could not send the response to %s: %s", request.id, e)

    async def _reject(
        self,
        part: Partition,
        message: DeliveredMessage,
        envelope: Envelope | None,
        reason: str,
        detail: str,
    ) -> None:
        """Dead-letter the message with the reason; answer it if it is a request."""
        properties = message.header.properties
        await self._transport.dead_letter(
            message.body,
            properties.headers,
            properties.content_type,
            reason=reason,
            detail=detail,
            queue=part.queue,
            deadline=self._deadline(),
        )
        self._metrics.dead_letters.labels(reason).inc()
        self._metrics.handled.labels(part.agent_type, "dead_lettered").inc()
        kind = envelope.kind if envelope is not None else None
        if properties.reply_to and kind in (None, n.KIND_SEND, n.KIND_CONTROL):
            await self._answer_rejected(part, message, envelope, reason, detail)
        self._ack(message)

    async def _answer_rejected(
        self,
        part: Partition,
        message: DeliveredMessage,
        envelope: Envelope | None,
        reason: str,
        detail: str,
    ) -> None:
        properties = message.header.properties
        assert properties.reply_to is not None
        error = MessageRejectedError(
            f"{reason}: {detail} (the message is in {self._names.dead_letter_queue}, from "
            f"{part.queue})"
        )
        headers = properties.headers or {}
        correlation = (
            (envelope.correlation if envelope is not None else None)
            or properties.correlation_id
            or _text(headers.get("ce-agcorrelation"))
            or properties.message_id
            or ""
        )
        response = Envelope(
            id=f"{envelope.id if envelope else properties.message_id or 'rejected'}:response",
            source=f"agnext/{self._settings.worker_id}",
            type="error",
            kind=n.KIND_ERROR,
            data=str(error).encode(),
            content_type="text/plain",
            correlation=correlation,
            error_type=error_type_name(error),
        )
        try:
            await self._transport.reply(response, properties.reply_to, self._deadline())
        except (PublishTimeoutError, ServiceUnavailableError) as e:
            logger.warning("could not tell the caller of a rejected request: %s", e)


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)

"""The worker half of the broker runtime: which partitions this worker consumes, and how one
delivery becomes a handled, saved and acknowledged message.

For each delivery, in the order the broker delivered it: decode; take the agent's place in its
turn line (synchronously, so order holds); then, in a task: wait for the turn, load the agent
(its state from Redis on activation), skip the handler if the message id is already applied,
run the handler, save the state with the applied id in one version-checked write, reply, and
only then acknowledge. Bad input is dead-lettered with the reason; the worker keeps going.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiormq.abc import DeliveredMessage
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from ...base import (
    AgentId,
    BaseAgent,
    CancellationToken,
    MessageContext,
    SerializationError,
    SerializationRegistry,
    Subscription,
    UnknownPayload,
)
from .._agents import AgentDirectory
from .._invoke import invoke_handler
from .._runtime_core import derived_message_ids
from .._telemetry import Telemetry
from .._turns import Place
from . import _names as n
from ._claims import PartitionClaims
from ._errors import error_type_name
from ._registry import Registry
from ._replies import (
    CONTROL_LOAD_STATE,
    CONTROL_METADATA,
    CONTROL_SAVE_STATE,
    describe,
    encode_response,
    error_response,
)
from ._routing import partition_of
from ._settings import BrokerSettings
from ._state_store import AgentRecord, StateConflict, StateStore, StoredResponse
from ._transport import Transport
from ._wire import Envelope, InvalidMessage, decode

logger = logging.getLogger("agnext_broker")

CANCEL_GRACE_SECONDS = 1.0
_REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def turn_id(agent_id: AgentId, delivery_id: str) -> str:
    """A short id of one agent's turn on one message, as carried in call paths."""
    digest = hashlib.blake2b(f"{agent_id}\x00{delivery_id}".encode(), digest_size=8)
    return digest.hexdigest()


class _Retry(Exception):
    """The delivery must go back to the queue (the agent's state moved under us)."""


@dataclass
class _Partition:
    agent_type: str
    partition: int
    queue: str
    consumer_tag: str | None = None
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    joining: asyncio.Lock = field(default_factory=asyncio.Lock)


class Hosting:
    """Consumes the partitions this worker owns and handles their messages."""

    def __init__(
        self,
        *,
        settings: BrokerSettings,
        names: n.Names,
        redis: Redis,
        registry: Registry,
        store: StateStore,
        transport: Transport,
        directory: AgentDirectory,
        serializers: SerializationRegistry,
        telemetry: Telemetry,
        subscriptions: Callable[[], list[Subscription]],
        reload_subscriptions: Callable[[], Awaitable[None]],
        on_event_failure: Callable[[BaseException], None],
    ) -> None:
        self._settings = settings
        self._names = names
        self._redis = redis
        self._registry = registry
        self._store = store
        self._transport = transport
        self._directory = directory
        self._serializers = serializers
        self._telemetry = telemetry
        self._subscriptions = subscriptions
        self._reload_subscriptions = reload_subscriptions
        self._on_event_failure = on_event_failure
        self.partitions: dict[str, int] = {}  # hosted agent type -> partition count
        self._owned: dict[tuple[str, int], _Partition] = {}
        self._records: dict[AgentId, AgentRecord] = {}
        self._last_used: dict[AgentId, float] = {}
        self._touched: dict[str, set[str]] = {}
        # RPCs being handled, and RPCs whose caller stopped waiting (bounded, oldest dropped).
        # (the delivery task running the handler, the handler's token) by request id
        self._handling: dict[str, tuple[asyncio.Task[Any], CancellationToken]] = {}
        self._cancelled: OrderedDict[str, bool] = OrderedDict()
        self._save_locks: dict[AgentId, asyncio.Lock] = {}
        self._claims = PartitionClaims(redis, names, settings.worker_id)

    # -- ownership ------------------------------------------------------------------------------

    @property
    def owned(self) -> list[tuple[str, int]]:
        return sorted(self._owned)

    @property
    def in_flight(self) -> int:
        return sum(len(p.in_flight) for p in self._owned.values())

    async def rebalance(self, live_workers: dict[str, tuple[str, ...]]) -> None:
        """Consume exactly the partitions assigned to this worker among the live workers."""
        me = self._settings.worker_id
        wanted: set[tuple[str, int]] = set()
        for agent_type, partitions in self.partitions.items():
            hosts = sorted(w for w, types in live_workers.items() if agent_type in types)
            if me not in hosts:
                continue
            wanted.update((agent_type, p) for p in range(partitions) if hosts[p % len(hosts)] == me)
        for key in sorted(set(self._owned) - wanted):
            await self._release(self._owned.pop(key))
        for agent_type, partition in sorted(wanted):
            # The previous owner releases its claim after finishing its turns; a dead owner's
            # claim is void. A partition this worker already consumes is claimed again on every
            # rebalance: a claim taken while this worker seemed dead comes back once the worker
            # that took it is gone.
            claimed = await self._claims.claim(agent_type, partition)
            if claimed and (agent_type, partition) not in self._owned:
                await self._consume(agent_type, partition)

    async def _consume(self, agent_type: str, partition: int) -> None:
        queue = self._names.partition_queue(agent_type, partition)
        owned = _Partition(agent_type, partition, queue)
        self._owned[(agent_type, partition)] = owned
        owned.consumer_tag = await self._transport.consumers.consume(
            owned.queue,
            partial(self._on_delivery, owned),
            exclusive=self._settings.queue_type == "classic",
        )
        logger.info("consuming %s partition %d", agent_type, partition)

    async def _release(self, owned: _Partition) -> None:
        """Stop consuming, finish the turns in flight, forget the agents, release the claim."""
        if owned.consumer_tag is not None:
            try:
                await self._transport.consumers.cancel(
                    owned.consumer_tag, timeout=self._settings.drain_timeout
                )
            except Exception as e:  # the channel may already be gone
                logger.debug("cancel of %s/%d failed: %s", owned.agent_type, owned.partition, e)
        if owned.in_flight:
            _, late = await asyncio.wait(owned.in_flight, timeout=self._settings.drain_timeout)
            if late:
                # Their messages go back to the queue, for the next owner.
                logger.warning(
                    "%d handler(s) of %s partition %d did not finish within %.0f s; cancelled",
                    len(late),
                    owned.agent_type,
                    owned.partition,
                    self._settings.drain_timeout,
                )
                for task in late:
                    task.cancel()
                _, stuck = await asyncio.wait(late, timeout=self._settings.drain_timeout)
                if stuck:  # the partition is released anyway: its messages are not acked
                    logger.error(
                        "%d handler(s) of %s partition %d ignored cancellation",
                        len(stuck),
                        owned.agent_type,
                        owned.partition,
                    )
        for agent_id in self._directory.active_ids():
            if (
                agent_id.type == owned.agent_type
                and self._partition_of(agent_id) == owned.partition
            ):
                await self._deactivate(agent_id)
        await self._claims.release(owned.agent_type, owned.partition)
        logger.info("released %s partition %d", owned.agent_type, owned.partition)

    async def release_all(self) -> None:
        await self._flush_touched()
        for key in list(self._owned):
            await self._release(self._owned.pop(key))

    def _partition_of(self, agent_id: AgentId) -> int:
        return partition_of(agent_id.key, self.partitions.get(agent_id.type, 1))

    def owns(self, agent_id: AgentId) -> bool:
        return (agent_id.type, self._partition_of(agent_id)) in self._owned

    async def queues_empty(self) -> bool:
        for owned in list(self._owned.values()):
            declared = await self._transport.topology.channel.declare_queue(
                owned.queue, passive=True
            )
            if declared.declaration_result.message_count:
                return False
        return True

    # -- activation -----------------------------------------------------------------------------

    async def _deactivate(self, agent_id: AgentId) -> None:
        agent = self._directory.deactivate(agent_id)
        self._records.pop(agent_id, None)
        self._save_locks.pop(agent_id, None)
        self._last_used.pop(agent_id, None)
        if agent is not None:
            try:
                await agent.close()
            except Exception:
                logger.exception("closing agent %s failed", agent_id)
            await self._registry.forget_active(agent_id.type, [agent_id.key])

    async def _activate(self, agent_id: AgentId) -> tuple[Any, AgentRecord]:
        record = self._records.get(agent_id)
        agent = self._directory.get_active(agent_id)
        if agent is None or record is None:
            record = await self._store.load(agent_id)  # a Redis error: the message is retried
            try:
                agent = await self._directory.activate(agent_id)
                if record.state is not None:
                    await agent.load_state(record.state)
            except Exception as e:
                self._directory.deactivate(agent_id)
                raise _ActivationFailed(e) from e
            self._records[agent_id] = record
        self._last_used[agent_id] = time.monotonic()
        self._touched.setdefault(agent_id.type, set()).add(agent_id.key)
        return agent, record

    async def sweep(self) -> None:
        """Deactivate agents idle for longer than ``idle_timeout``; report the active ones."""
        deadline = time.monotonic() - self._settings.idle_timeout
        for agent_id, last_used in list(self._last_used.items()):
            gate = self._directory.gate(agent_id)
            if last_used < deadline and (gate is None or not (gate.busy or gate.waiting)):
                await self._deactivate(agent_id)
        await self._flush_touched()

    async def _flush_touched(self) -> None:
        touched, self._touched = self._touched, {}
        for agent_type, keys in touched.items():
            await self._registry.touch_active(agent_type, sorted(keys))

    # -- deliveries -----------------------------------------------------------------------------

    def _recipients(self, agent_type: str, envelope: Envelope) -> list[AgentId]:
        if envelope.kind in (n.KIND_SEND, n.KIND_CONTROL):
            recipient = envelope.recipient
            if recipient is None or recipient.type != agent_type:
                raise InvalidMessage(
                    "invalid_cloudevent", f"direct message without a recipient of {agent_type}"
                )
            return [recipient]
        topic = envelope.topic
        if topic is None:
            raise InvalidMessage("invalid_cloudevent", "event without agtopictype")
        return [
            subscription.map_to_agent(topic)
            for subscription in self._subscriptions()
            if getattr(subscription, "agent_type", None) == agent_type
            and subscription.is_match(topic)
        ]

    async def _on_delivery(self, owned: _Partition, message: DeliveredMessage) -> None:
        # This callback already runs in a task of its own (one per delivery): no need for another.
        task = asyncio.current_task()
        assert task is not None
        acknowledgements = self._transport.consumers.acknowledgements(message)
        tag = _delivery_tag(message)
        acknowledgements.received(tag)  # before any pause: in delivery order
        owned.in_flight.add(task)
        try:
            # Deliveries take their places in the agents' turn lines in the order the broker
            # delivered them: without contention the lock is taken without a pause, and a
            # delivery that must wait (for a subscription reload) holds up those behind it.
            async with owned.joining:
                joined = await self._join(owned, message)
            if joined is not None:
                await self._process(owned, message, *joined)
        finally:
            owned.in_flight.discard(task)
            if not acknowledgements.settled(tag):  # cancelled, or failed: back to the queue
                try:
                    await acknowledgements.requeue(tag)
                except Exception as e:  # the channel is gone: the broker requeues it anyway
                    logger.debug("could not give back delivery %d: %s", tag, e)

    def _ack(self, message: DeliveredMessage) -> None:
        self._transport.consumers.acknowledgements(message).ack(_delivery_tag(message))

    async def _requeue(self, message: DeliveredMessage) -> None:
        await self._transport.consumers.acknowledgements(message).requeue(_delivery_tag(message))

    async def _join(
        self, owned: _Partition, message: DeliveredMessage
    ) -> tuple[Envelope, Any, list[tuple[AgentId, str, Place]]] | None:
        """Decode the delivery and take its places in its recipients' turn lines; ``None`` when
        it needs no handling (acknowledged or dead-lettered here)."""
        try:
            if len(message.body) > self._settings.max_message_bytes:
                raise InvalidMessage("too_large", f"{len(message.body)} bytes")
            properties = message.header.properties
            envelope = decode(properties.headers, properties.content_type, message.body)
            if envelope.kind == n.KIND_CANCEL:
                self._cancel(envelope.correlation or "")
                self._ack(message)
                return None
            if envelope.kind not in (n.KIND_SEND, n.KIND_PUBLISH, n.KIND_CONTROL):
                raise InvalidMessage("invalid_cloudevent", f"unexpected kind {envelope.kind!r}")
            if envelope.kind == n.KIND_CONTROL:
                payload: Any = json.loads(envelope.data) if envelope.data else None
            else:
                payload = self._serializers.deserialize(
                    envelope.data, type_name=envelope.type, data_content_type=envelope.content_type
                )
            if isinstance(payload, UnknownPayload):
                raise InvalidMessage(
                    "unknown_type", f"no message type {envelope.type!r} is registered here"
                )
            recipients = self._recipients(owned.agent_type, envelope)
        except (InvalidMessage, SerializationError) as e:
            reason = e.reason if isinstance(e, InvalidMessage) else "undecodable"
            await self._dead_letter_and_ack(owned, message, reason, str(e))
            return None
        if envelope.kind == n.KIND_PUBLISH and not recipients:
            # A wider binding, or a subscription this worker has not heard of yet.
            await self._reload_subscriptions()
            recipients = self._recipients(owned.agent_type, envelope)
        if envelope.kind == n.KIND_PUBLISH:  # a publisher does not receive its own event
            recipients = [r for r in recipients if r != envelope.sender]
        if not recipients:
            self._ack(message)
            return None
        joined: list[tuple[AgentId, str, Place]] = []
        for index, recipient in enumerate(recipients):
            delivery_id = envelope.id if index == 0 else f"{envelope.id}#{index}"
            turn = turn_id(recipient, delivery_id)
            place = Place(self._directory.gate(recipient), turn, envelope.path)
            joined.append((recipient, delivery_id, place))
        return envelope, payload, joined

    def _cancel(self, request_id: str) -> None:
        """The caller of ``request_id`` stopped waiting: cancel its handler, or skip it later."""
        self._cancelled[request_id] = True
        while len(self._cancelled) > 10_000:
            self._cancelled.popitem(last=False)
        running = self._handling.get(request_id)
        if running is not None:
            # The handler sees its token cancelled at once; one that ignores it is cancelled
            # shortly after (it may be in the middle of a call that it would otherwise lose).
            running[1].cancel()
            asyncio.get_running_loop().call_later(
                CANCEL_GRACE_SECONDS, self._cancel_handler, request_id, running
            )

    def _cancel_handler(self, request_id: str, running: tuple[asyncio.Task[Any], Any]) -> None:
        # Only while that handler still runs: its delivery task goes on to save and ack.
        if self._handling.get(request_id) is running:
            running[0].cancel()

    async def _process(
        self,
        owned: _Partition,
        message: DeliveredMessage,
        envelope: Envelope,
        payload: Any,
        joined: list[tuple[AgentId, str, Place]],
    ) -> None:
        replies: list[asyncio.Task[None]] = []
        try:
            unreached = list(reversed(joined))
            try:
                while unreached:
                    recipient, delivery_id, place = unreached.pop()
                    await place.wait()  # gives the place up when cancelled
                    try:
                        await self._handle(
                            recipient, delivery_id, envelope, payload, place, message, replies
                        )
                    finally:
                        place.leave()  # the reply's confirm need not hold up the next turn
            finally:
                for _, _, later in unreached:
                    later.abandon()  # the places of recipients this delivery will not reach
                await asyncio.gather(*replies)
            self._ack(message)
        except _Retry:
            await self._requeue(message)
        except _DeadLetter as e:
            await self._dead_letter_and_ack(owned, message, e.reason, e.detail)
        except Exception:
            logger.exception("delivery %s failed; it goes back to the queue", envelope.id)
            await self._requeue(message)

    async def _handle(
        self,
        agent_id: AgentId,
        delivery_id: str,
        envelope: Envelope,
        payload: Any,
        place: Place,
        message: DeliveredMessage,
        replies: list[asyncio.Task[None]],
    ) -> None:
        """Handle one message in the agent's turn: run it, save the state with its id, and start
        sending its response. A request already applied is answered with its stored response.

        An agent's response goes out once its state is saved, so whoever gets it reads the new
        state in Redis; a crash in between redelivers the request, which is then answered from
        the stored response. An agent that keeps no state answers first. The ack waits for the
        response's confirm.
        """
        is_rpc = envelope.kind != n.KIND_PUBLISH

        def respond(response: StoredResponse | None) -> None:
            if is_rpc and response is not None and message.header.properties.reply_to:
                replies.append(asyncio.ensure_future(self._reply(envelope, message, response)))

        try:
            agent, record = await self._activate(agent_id)
        except _ActivationFailed as e:
            if not is_rpc:
                raise _DeadLetter("activation_error", describe(e.cause)) from e
            respond(error_response(e.cause))
            return
        if record.has_applied(delivery_id):
            respond(record.responses.get(delivery_id))
            return
        if is_rpc and self._cancelled.pop(envelope.id, False):
            return  # the caller stopped waiting before the handler began
        response: StoredResponse | None
        if envelope.kind == n.KIND_CONTROL:
            response = await self._control(agent, envelope.type, payload)
        else:
            response = await self._run(agent_id, agent, envelope, payload, place)
        if _keeps_state(agent) or envelope.kind == n.KIND_CONTROL:
            await self._commit(agent_id, delivery_id, response)
            respond(response)  # once saved: whoever gets it reads the new state
            return
        # The agent keeps no state, so there is none to read: an RPC is answered at once, then
        # its record (its id and response, for a retry) is written. An event needs no record:
        # redelivered after a crash, it runs the handler again, and what it sends goes under the
        # same ids, which their receivers apply once.
        respond(response)
        if is_rpc:
            # The response reaches the socket first: publishing hands the frames to the
            # connection's writer task, two loop passes away.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            await self._commit(agent_id, delivery_id, response)

    async def _run(
        self, agent_id: AgentId, agent: Any, envelope: Envelope, payload: Any, place: Place
    ) -> StoredResponse | None:
        """Call the handler; an RPC's outcome becomes its response, an event is retried and
        finally dead-lettered."""
        is_rpc = envelope.kind == n.KIND_SEND
        ctx = MessageContext(
            envelope.sender, envelope.topic, is_rpc, CancellationToken(), envelope.id
        )
        attempts = 1 if is_rpc else self._settings.handler_attempts
        for attempt in range(1, attempts + 1):
            # Every attempt, and every run after a redelivery, sends the same message ids.
            call = invoke_handler(
                agent,
                payload,
                ctx,
                place.turn,
                place.path,
                self._telemetry,
                derived_message_ids(str(place.turn)),
            )
            if is_rpc:  # the caller's cancel request cancels this task while in the handler
                task = asyncio.current_task()
                assert task is not None
                self._handling[envelope.id] = (task, ctx.cancellation_token)
            try:
                result = await call
                if is_rpc and self._cancelled.get(envelope.id):
                    _uncancel(asyncio.current_task())  # a handler that swallowed its cancel
                return encode_response(self._serializers, result) if is_rpc else None
            except asyncio.CancelledError as e:
                if not (is_rpc and self._cancelled.pop(envelope.id, False)):
                    raise  # this worker is stopping: the message goes back to the queue
                # The caller cancelled: the agent saw it, and its state is kept as it left it.
                _uncancel(asyncio.current_task())  # this delivery goes on: save and ack
                return StoredResponse("error", "text/plain", "cancelled", error_type_name(e))
            except Exception as e:
                # The instance may hold half a change: the next attempt starts from saved state.
                await self._deactivate(agent_id)
                if is_rpc:
                    return error_response(e)
                if attempt == attempts:
                    self._on_event_failure(e)
                    raise _DeadLetter("handler_error", describe(e)) from e
                logger.warning("event handler of %s failed (attempt %d): %s", agent_id, attempt, e)
                await asyncio.sleep(0.05 * 2**attempt)
                agent, _ = await self._activate(agent_id)
            finally:
                self._handling.pop(envelope.id, None)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _control(self, agent: Any, operation: str, payload: Any) -> StoredResponse:
        """State and metadata requests, answered in the agent's turn."""
        try:
            if operation == CONTROL_SAVE_STATE:
                result: Any = dict(await agent.save_state())
            elif operation == CONTROL_LOAD_STATE:
                await agent.load_state(payload)
                result = None
            elif operation == CONTROL_METADATA:
                result = dict(agent.metadata)
            else:
                raise ValueError(f"unknown control operation {operation!r}")
            return encode_response(self._serializers, result)
        except Exception as e:
            return error_response(e)

    async def _commit(
        self, agent_id: AgentId, delivery_id: str, response: StoredResponse | None
    ) -> None:
        """Save the agent's state with the applied id (and response) in one conditional write.

        While Redis cannot be reached (restarting, a network cut) the write is tried again with
        backoff, holding the agent's turn: the instance holds the handler's effect. A write that
        landed although its answer was lost comes back as a conflict, and the redelivered
        message is then recognised as applied.

        Raises:
            _Retry: another worker wrote the agent's state meanwhile.
        """
        lock = self._save_locks.get(agent_id)
        if lock is None:
            lock = self._save_locks[agent_id] = asyncio.Lock()
        async with lock:  # turns of one agent that overlap (reentrant, concurrent) save in order
            agent = self._directory.get_active(agent_id)
            try:
                state = await _saved_state(agent) if agent is not None else None
                save = partial(self._save_record, agent_id, state, delivery_id, response)
                try:
                    updated = await save()
                except _REDIS_UNREACHABLE:
                    # Retrying only once a write failed keeps the usual write cheap.
                    async for attempt in AsyncRetrying(
                        retry=retry_if_exception_type(_REDIS_UNREACHABLE),
                        wait=wait_exponential(multiplier=0.05, max=2.0),
                        before_sleep=partial(_log_save_retry, agent_id),
                        reraise=True,
                    ):
                        with attempt:
                            updated = await save()
            except StateConflict as e:
                logger.warning("%s; the message goes back to the queue", e)
                await self._deactivate(agent_id)
                raise _Retry() from e
            except BaseException:
                # The effect was not saved: the message goes back to the queue, and runs again
                # from the saved state, not on this instance.
                with contextlib.suppress(Exception):
                    await self._deactivate(agent_id)
                raise
            if agent is not None:
                self._records[agent_id] = updated

    async def _save_record(
        self,
        agent_id: AgentId,
        state: dict[str, Any] | None,
        delivery_id: str,
        response: StoredResponse | None,
    ) -> AgentRecord:
        """Write the agent's record after ``delivery_id`` (``state`` None: the saved one)."""
        record = self._records.get(agent_id) or await self._store.load(agent_id)
        updated = record.next(
            state if state is not None else record.state,
            delivery_id,
            response,
            self._settings.applied_ids_kept,
            self._settings.responses_kept,
        )
        await self._store.save(agent_id, record.version, updated)
        return updated

    async def _reply(
        self, request: Envelope, message: DeliveredMessage, stored: StoredResponse
    ) -> None:
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
        await self._transport.reply(response, properties.reply_to)

    async def _dead_letter_and_ack(
        self, owned: _Partition, message: DeliveredMessage, reason: str, detail: str
    ) -> None:
        await self._transport.dead_letter(
            message.body,
            message.header.properties.headers,
            message.header.properties.content_type,
            reason=reason,
            detail=detail,
            queue=owned.queue,
        )
        self._ack(message)


class _ActivationFailed(Exception):
    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _DeadLetter(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _delivery_tag(message: DeliveredMessage) -> int:
    tag = message.delivery_tag
    assert tag is not None  # deliveries to a consumer always have one
    return tag


def _uncancel(task: asyncio.Task[Any] | None) -> None:
    """Take back a cancellation that was handled (Python 3.11+ counts them, and a task still
    counted as cancelling turns its later timeouts into cancellations)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


def _log_save_retry(agent_id: AgentId, retry_state: RetryCallState) -> None:
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    logger.warning(
        "saving the state of %s failed (%s); trying again in %.1f s",
        agent_id,
        error,
        retry_state.upcoming_sleep,
        extra={"agent": str(agent_id), "attempt": retry_state.attempt_number},
    )


def _keeps_state(agent: Any) -> bool:
    """Whether the agent has a ``save_state()`` of its own."""
    return not (isinstance(agent, BaseAgent) and type(agent).save_state is BaseAgent.save_state)


async def _saved_state(agent: Any) -> dict[str, Any] | None:
    """The agent's ``save_state()``, or ``None`` for an agent that keeps no state."""
    return dict(await agent.save_state()) if _keeps_state(agent) else None

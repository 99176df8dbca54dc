"""One agent's turn on one message: activate the agent, skip what it already applied, run the
handler, save, and answer.

An agent's response goes out once its state is saved, so whoever gets it reads the new state in
Redis; a crash in between redelivers the request, which is then answered from the stored
response. An agent that keeps no state answers first, then records the request (its id and
response, for a retry). A request already applied is answered with its stored response, or, if
that is no longer kept, with :class:`ResponseExpiredError`; it is never applied twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ...base import (
    AgentId,
    CancellationToken,
    MessageContext,
    PublishTimeoutError,
    ResponseExpiredError,
    SerializationRegistry,
    ServiceUnavailableError,
)
from .._invoke import invoke_handler
from .._runtime_core import derived_message_ids
from .._telemetry import Telemetry
from .._turns import Place
from . import _names as n
from ._activation import ActivationFailed, Activations
from ._commit import Commits, keeps_state
from ._metrics import Metrics
from ._redis import StateStore, StoredResponse
from ._remote_errors import error_type_name
from ._replies import (
    CONTROL_LOAD_STATE,
    CONTROL_METADATA,
    CONTROL_SAVE_STATE,
    describe,
    encode_response,
    error_response,
)
from ._retrying import until_available
from ._settings import BrokerSettings
from ._wire import Envelope

logger = logging.getLogger("agnext_broker")

CANCEL_GRACE_SECONDS = 1.0
_CANCELLED_KEPT = 10_000

# A handler that failed because the runtime could not reach RabbitMQ or Redis in time: the
# message goes back to its queue instead of becoming the handler's error.
_INFRASTRUCTURE = (ServiceUnavailableError, PublishTimeoutError)


def turn_id(agent_id: AgentId, source: str, delivery_id: str) -> str:
    """A short id of one agent's turn on one message, as carried in call paths (and the root of
    the ids of what the handler sends)."""
    text = f"{agent_id}\x00{source}\x00{delivery_id}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class DeadLetter(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class GiveBack(Exception):
    """The message goes back to its queue, to be handled again (from the saved state)."""


@dataclass(frozen=True)
class Turn:
    """What a turn is about: the recipient, the message, and its place in the turn line."""

    agent_id: AgentId
    key: str  # the dedup key of this recipient's copy of the message
    envelope: Envelope
    payload: Any
    place: Place


Respond = Callable[[StoredResponse | None], None]


class Turns:
    def __init__(
        self,
        *,
        settings: BrokerSettings,
        serializers: SerializationRegistry,
        telemetry: Telemetry,
        activations: Activations,
        commits: Commits,
        store: StateStore,
        metrics: Metrics,
        on_event_failure: Callable[[BaseException], None],
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._serializers = serializers
        self._telemetry = telemetry
        self._activations = activations
        self._commits = commits
        self._store = store
        self._on_event_failure = on_event_failure
        # RPCs being handled (the delivery task running the handler, the handler's token), and
        # RPCs whose caller stopped waiting (bounded, oldest dropped), by dedup key.
        self._handling: dict[str, tuple[asyncio.Task[Any], CancellationToken]] = {}
        self._cancelled: OrderedDict[str, bool] = OrderedDict()

    def cancel(self, key: str) -> None:
        """The caller of the request ``key`` stopped waiting: cancel its handler, or skip it."""
        self._cancelled[key] = True
        while len(self._cancelled) > _CANCELLED_KEPT:
            self._cancelled.popitem(last=False)
        running = self._handling.get(key)
        if running is not None:
            # The handler sees its token cancelled at once; one that ignores it is cancelled
            # shortly after (it may be in the middle of a call that it would otherwise lose).
            running[1].cancel()
            asyncio.get_running_loop().call_later(
                CANCEL_GRACE_SECONDS, self._cancel_handler, key, running
            )

    def _cancel_handler(self, key: str, running: tuple[asyncio.Task[Any], Any]) -> None:
        # Only while that handler still runs: its delivery task goes on to save and ack.
        if self._handling.get(key) is running:
            running[0].cancel()

    async def take(self, turn: Turn, respond: Respond) -> None:
        """Handle the message in the agent's turn (the caller holds it); when tracing, its
        spans are children of the span its ``traceparent`` names.

        Raises:
            DeadLetter: an event that cannot be handled.
            GiveBack: the message must be handled again (state moved, servers unreachable).
        """
        if self._telemetry.enabled:
            envelope = turn.envelope
            with self._telemetry.continuing(envelope.traceparent, envelope.tracestate):
                await self._take(turn, respond)
        else:
            await self._take(turn, respond)

    async def _take(self, turn: Turn, respond: Respond) -> None:
        envelope = turn.envelope
        is_rpc = envelope.kind != n.KIND_PUBLISH
        try:
            agent, record = await self._activations.activate(turn.agent_id)
        except ActivationFailed as e:
            if not is_rpc:
                raise DeadLetter(n.REASON_ACTIVATION_ERROR, describe(e.cause)) from e
            respond(error_response(e.cause))
            return
        handled = self._metrics.handled
        agent_type = turn.agent_id.type
        if record.has_applied(turn.key, self._store.retention):
            handled.labels(agent_type, "duplicate").inc()
            if is_rpc:
                respond(await self._stored_response(turn))
            return
        if is_rpc and self._cancelled.pop(turn.key, False):
            handled.labels(agent_type, "cancelled").inc()
            return  # the caller stopped waiting before the handler began
        if envelope.kind == n.KIND_CONTROL:
            response: StoredResponse | None = await self._control(agent, envelope.type, turn)
        else:
            response = await self._run(agent, turn)
        failed = response is not None and response.error_type is not None
        handled.labels(agent_type, "error" if failed else "ok").inc()
        if keeps_state(agent) or envelope.kind == n.KIND_CONTROL:
            await self._commits.commit(turn.agent_id, turn.key, response)
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
            await self._commits.commit(turn.agent_id, turn.key, response)

    async def _stored_response(self, turn: Turn) -> StoredResponse:
        lookup = partial(self._store.response, turn.agent_id, turn.key)
        stored = await until_available(lookup, f"reading a stored response of {turn.agent_id}")
        if stored is not None:
            return stored
        retention = self._store.retention
        return error_response(
            ResponseExpiredError(
                f"Message {turn.envelope.id} from {turn.envelope.source} was already handled by "
                f"{turn.agent_id}, and its response is no longer kept (responses are kept for "
                f"{retention.window:g} s and the last {retention.responses} messages of an "
                "agent); it is not handled again."
            )
        )

    async def _run(self, agent: Any, turn: Turn) -> StoredResponse | None:
        """Call the handler; an RPC's outcome becomes its response, an event is retried and
        finally dead-lettered."""
        envelope, agent_id, place = turn.envelope, turn.agent_id, turn.place
        is_rpc = envelope.kind == n.KIND_SEND
        ctx = MessageContext(
            envelope.sender, envelope.topic, is_rpc, CancellationToken(), envelope.id
        )
        attempts = 1 if is_rpc else self._settings.handler_attempts
        for attempt in range(1, attempts + 1):
            # Every attempt, and every run after a redelivery, sends the same message ids.
            call = invoke_handler(
                agent,
                turn.payload,
                ctx,
                place.turn,
                place.path,
                self._telemetry,
                derived_message_ids(str(place.turn)),
            )
            if is_rpc:  # the caller's cancel request cancels this task while in the handler
                task = asyncio.current_task()
                assert task is not None
                self._handling[turn.key] = (task, ctx.cancellation_token)
            began = time.monotonic()
            try:
                result = await call
                if is_rpc and self._cancelled.get(turn.key):
                    _uncancel(asyncio.current_task())  # a handler that swallowed its cancel
                return encode_response(self._serializers, result) if is_rpc else None
            except asyncio.CancelledError as e:
                if not (is_rpc and self._cancelled.pop(turn.key, False)):
                    raise  # this worker is stopping: the message goes back to the queue
                # The caller cancelled: the agent saw it, and its state is kept as it left it.
                _uncancel(asyncio.current_task())  # this delivery goes on: save and ack
                return StoredResponse("error", "text/plain", "cancelled", error_type_name(e))
            except _INFRASTRUCTURE as e:
                logger.warning(
                    "the handler of %s could not reach a server (%s); its message goes back to "
                    "the queue",
                    agent_id,
                    e,
                )
                await self._activations.deactivate(agent_id)
                raise GiveBack() from e
            except Exception as e:
                # The instance may hold half a change: the next attempt starts from saved state.
                await self._activations.deactivate(agent_id)
                if is_rpc:
                    return error_response(e)
                if attempt == attempts:
                    self._on_event_failure(e)
                    raise DeadLetter(n.REASON_HANDLER_ERROR, describe(e)) from e
                logger.warning("event handler of %s failed (attempt %d): %s", agent_id, attempt, e)
                await asyncio.sleep(0.05 * 2**attempt)
                agent, _ = await self._activations.activate(agent_id)
            finally:
                self._handling.pop(turn.key, None)
                seconds = time.monotonic() - began
                self._metrics.handler_seconds.labels(agent_id.type).observe(seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _control(self, agent: Any, operation: str, turn: Turn) -> StoredResponse:
        """State and metadata requests, answered in the agent's turn."""
        try:
            if operation == CONTROL_SAVE_STATE:
                result: Any = dict(await agent.save_state())
            elif operation == CONTROL_LOAD_STATE:
                await agent.load_state(turn.payload)
                result = None
            elif operation == CONTROL_METADATA:
                result = dict(agent.metadata)
            else:
                raise ValueError(f"unknown control operation {operation!r}")
            return encode_response(self._serializers, result)
        except Exception as e:
            return error_response(e)


def _uncancel(task: asyncio.Task[Any] | None) -> None:
    """Take back a cancellation that was handled (tasks count them, and a task still counted as
    cancelling turns its later timeouts into cancellations)."""
    if task is not None:
        task.uncancel()

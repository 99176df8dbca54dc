"""The standalone runtime: one process, in memory, no servers.

A send runs the recipient's handler in the caller's task when the recipient's turn is free (no
queue hop, no serialization); a publish starts one task per recipient. Both keep the turn-based
rule of :mod:`._turns`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from opentelemetry.trace import TracerProvider

from ..base import (
    AgentId,
    CancellationToken,
    DropMessage,
    InterventionHandler,
    MessageContext,
    TopicId,
    UndeliverableException,
)
from ._runtime_core import RuntimeCore, calling_path, new_message_id
from ._telemetry import TraceContext
from ._turns import Place, TurnGate

logger = logging.getLogger("agnext_broker")


class StandaloneAgentRuntime(RuntimeCore):
    """Runs agents in this process; also importable as ``SingleThreadedAgentRuntime``.

    Args:
        intervention_handlers: see :class:`InterventionHandler`.
        tracer_provider: emit OpenTelemetry spans through this provider.
        ignore_unhandled_exceptions: if ``False``, the first exception raised by an event
            handler is raised again by :meth:`stop`, :meth:`stop_when_idle` or :meth:`stop_when`.
    """

    def __init__(
        self,
        *,
        intervention_handlers: Sequence[InterventionHandler] | None = None,
        tracer_provider: TracerProvider | None = None,
        ignore_unhandled_exceptions: bool = True,
    ) -> None:
        super().__init__(
            intervention_handlers=intervention_handlers,
            tracer_provider=tracer_provider,
            runtime_name="standalone",
        )
        self._ignore_unhandled_exceptions = ignore_unhandled_exceptions
        self._background_exception: BaseException | None = None
        self._running = False
        self._resumed: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._in_flight = 0
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._turn_ids = itertools.count()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def unprocessed_messages_count(self) -> int:
        """Messages accepted and not yet fully handled."""
        return self._in_flight

    def start(self) -> None:
        """Start delivering messages (sends and publishes made earlier wait for this)."""
        if self._running:
            raise RuntimeError("The runtime is already started.")
        self._running = True
        if self._resumed is not None:
            self._resumed.set()

    async def stop(self) -> None:
        """Stop delivering: handlers already running finish, messages not yet begun wait for the
        next :meth:`start`.

        Raises:
            RuntimeError: the runtime is not started.
            Exception: with ``ignore_unhandled_exceptions=False``, the first exception an event
                handler raised.
        """
        if not self._running:
            raise RuntimeError("The runtime is not started.")
        self._running = False
        if self._resumed is not None:
            self._resumed.clear()
        await asyncio.sleep(0)
        self._raise_background_exception()

    async def stop_when_idle(self) -> None:
        """Wait until no message is in flight, then stop."""
        if not self._running:
            raise RuntimeError("The runtime is not started.")
        while self._in_flight and self._background_exception is None:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()
        await self.stop()

    async def stop_when(self, condition: Callable[[], bool], check_period: float = 0.01) -> None:
        """Stop as soon as ``condition()`` is true (checked every ``check_period`` seconds)."""
        if not self._running:
            raise RuntimeError("The runtime is not started.")
        # A user condition can only be polled.
        while not condition() and self._background_exception is None:  # noqa: ASYNC110
            await asyncio.sleep(check_period)
        await self.stop()

    async def close(self) -> None:
        """Stop if running, drop undelivered events (with a log line) and close every agent."""
        if self._running:
            await self.stop()
        pending = [task for task in self._event_tasks if not task.done()]
        if pending:
            logger.warning("closing with %d undelivered event(s); they are discarded", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._close_agents()

    def _raise_background_exception(self) -> None:
        error, self._background_exception = self._background_exception, None
        if error is not None:
            raise error

    async def _until_running(self) -> None:
        if self._resumed is None:
            self._resumed = asyncio.Event()
        while not self._running:
            await self._resumed.wait()

    def _finished_one(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    # -- messages -------------------------------------------------------------------------------

    async def send_message(
        self,
        message: Any,
        recipient: AgentId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> Any:
        if not self._running:
            await self._until_running()
        if not self._directory.is_registered(recipient.type):
            raise UndeliverableException(
                f"No agent type {recipient.type!r} is registered; cannot send to {recipient}."
            )
        if message_id is None:
            message_id = new_message_id()
        ctx = MessageContext(sender, None, True, self._token(cancellation_token), message_id)
        if self._interventions.active:
            message = await self._interventions.on_send(message, ctx, recipient)
        place = self._join_turn(recipient, next(self._turn_ids), calling_path())
        self._in_flight += 1
        try:
            if self._telemetry.enabled:
                with self._telemetry.span("send", recipient, message_id):
                    result = await self._deliver(recipient, message, ctx, place, cancellation_token)
            else:
                result = await self._deliver(recipient, message, ctx, place, cancellation_token)
        finally:
            self._finished_one()
        if self._interventions.active:
            result = await self._interventions.on_response(result, recipient, sender)
        return result

    async def _deliver(
        self,
        recipient: AgentId,
        message: Any,
        ctx: MessageContext,
        place: Place,
        cancellation_token: CancellationToken | None,
    ) -> Any:
        if cancellation_token is None:
            return await self._handle(recipient, message, ctx, place)
        if cancellation_token.is_cancelled():
            place.abandon()
            raise asyncio.CancelledError(f"the send to {recipient} was cancelled")
        # The caller may cancel: the handler runs in its own task, which the token cancels.
        handler = self._spawn_in_turn(place, lambda: self._handle(recipient, message, ctx, place))
        cancellation_token.link_future(handler)
        return await handler

    async def publish_message(
        self,
        message: Any,
        topic_id: TopicId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> None:
        if not self._running:
            await self._until_running()
        if message_id is None:
            message_id = new_message_id()
        token = self._token(cancellation_token)
        if self._interventions.active:
            ctx = MessageContext(sender, topic_id, False, token, message_id)
            message = await self._interventions.on_publish(message, ctx)
            if message is DropMessage:
                return
        if self._telemetry.enabled:
            with self._telemetry.span("publish", topic_id, message_id):
                self._fan_out(message, topic_id, sender, token, message_id)
        else:
            self._fan_out(message, topic_id, sender, token, message_id)

    def _fan_out(
        self,
        message: Any,
        topic_id: TopicId,
        sender: AgentId | None,
        token: CancellationToken,
        message_id: str,
    ) -> None:
        # An event's call path is empty: nobody waits for it, so it never enters a running turn.
        # It takes its place in line now, but its task is only created when its turn comes, in
        # the context of the turn that ended: its trace is this one, kept here.
        trace = self._telemetry.current() if self._telemetry.enabled else None
        for recipient in self._subscriptions.recipients(topic_id):
            if recipient == sender:
                continue
            ctx = MessageContext(sender, topic_id, False, token, message_id)
            self._in_flight += 1
            gate = self._directory.gate(recipient)
            turn = next(self._turn_ids)
            start = partial(self._start_event, recipient, message, ctx, gate, turn, trace)
            if gate is None:
                start()
            else:
                gate.defer(turn, start)

    def _start_event(
        self,
        recipient: AgentId,
        message: Any,
        ctx: MessageContext,
        gate: TurnGate | None,
        turn: int,
        trace: TraceContext | None,
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._deliver_event(recipient, message, ctx, gate, turn, trace)
        )
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def _deliver_event(
        self,
        recipient: AgentId,
        message: Any,
        ctx: MessageContext,
        gate: TurnGate | None,
        turn: int,
        trace: TraceContext | None,
    ) -> None:
        """Handle an event whose turn has come (``gate.defer`` started it)."""
        try:
            if not self._running:
                await self._until_running()
            if trace is None:
                await self._run_handler(recipient, message, ctx, turn, ())
            else:
                with self._telemetry.within(trace):
                    await self._run_handler(recipient, message, ctx, turn, ())
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            logger.error(
                "event handler of %s failed on %s (message %s)",
                recipient,
                type(message).__name__,
                ctx.message_id,
                exc_info=True,
            )
            if not self._ignore_unhandled_exceptions and self._background_exception is None:
                self._background_exception = e
                if self._idle is not None:
                    self._idle.set()
        finally:
            if gate is not None:
                gate.leave(turn)
            self._finished_one()

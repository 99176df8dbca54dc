"""The calling side of RPC: requests, their correlated responses, timeouts and cancellation.

Every request ends by its deadline (``rpc_timeout`` after the call began, also while the
connection is down or the publish waits for its confirm) or by its caller's cancellation token.
Requests made outside handlers wait for one of ``max_pending_rpcs`` places, so a caller that
starts many at once holds a bounded number in flight (requests made by handlers are bounded by
the deliveries in flight, and must never wait behind their own callers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

from aiormq.abc import DeliveredMessage

from ...base import (
    AgentId,
    CancellationToken,
    PublishTimeoutError,
    RpcTimeoutError,
    SerializationRegistry,
    UndeliverableException,
)
from ...base._contexts import current_handler_frame
from . import _names as n
from ._amqp import Transport
from ._gate import Gate, Place
from ._metrics import Metrics
from ._remote_errors import rebuild_error
from ._replies import decode_response
from ._routing import routing_key
from ._settings import BrokerSettings
from ._wire import Envelope, InvalidMessage, decode

logger = logging.getLogger("agnext_broker")

CANCEL_BOUND = 5.0  # seconds a cancel notice may wait for the connection


class _Pending(NamedTuple):
    future: asyncio.Future[Any]
    recipient: AgentId
    sent_at: float  # time.monotonic()


class RpcClient:
    """Sends requests and matches the responses on this process's reply queue to them."""

    def __init__(
        self,
        transport: Transport,
        serializers: SerializationRegistry,
        settings: BrokerSettings,
        metrics: Metrics,
    ) -> None:
        self._transport = transport
        self._metrics = metrics
        self._serializers = serializers
        self._settings = settings
        self._pending: dict[str, _Pending] = {}
        self._places = Gate(settings.max_pending_rpcs)
        self._cancels: set[asyncio.Task[None]] = set()
        self.reply_to = ""

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def fail_all(self, error: BaseException) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)

    def fail_unhosted(self, hosted: frozenset[str], seen_at: float, namespace: str) -> None:
        """End the wait of requests to agent types that no live worker hosts any more (the
        last one left after they were sent): waiting for the timeout would tell nothing more.

        ``hosted`` is what the registry said at ``seen_at`` (``time.monotonic()``); requests sent
        since may have found a worker that registered meanwhile, and are left alone."""
        for request_id, (future, recipient, sent_at) in self._pending.items():
            if recipient.type not in hosted and sent_at < seen_at and not future.done():
                future.set_exception(
                    UndeliverableException(
                        f"No live worker hosts agent type {recipient.type!r} in namespace "
                        f"{namespace!r} any more; the request to {recipient} (message "
                        f"{request_id}) stays queued and is handled if a worker hosting that "
                        "type starts."
                    )
                )

    def place(
        self, deadline: float, recipient: AgentId, message_id: str
    ) -> AbstractAsyncContextManager[None]:
        """One of the ``max_pending_rpcs`` places (``async with``) for a request made outside
        handlers, held until its response; waits (until ``deadline``) while all are taken. A
        caller takes it before building its message, so that calls waiting their turn hold
        nothing but themselves. Requests made by handlers take none.

        Raises:
            RpcTimeoutError: no place came free by ``deadline``.
        """
        if current_handler_frame() is not None:
            return contextlib.nullcontext()

        def timed_out() -> RpcTimeoutError:
            return self._timeout_error(
                recipient, message_id, " (it waited for one of max_pending_rpcs)"
            )

        return Place(self._places, deadline, timed_out)

    async def request(self, envelope: Envelope, token: CancellationToken, deadline: float) -> Any:
        """Publish a request to its recipient and wait for the response (or its error) until
        ``deadline`` (``loop.time()``).

        Raises:
            RpcTimeoutError: no response by the deadline.
            asyncio.CancelledError: the token was cancelled (the recipient is told).
        """
        recipient = envelope.recipient
        assert recipient is not None
        loop = asyncio.get_running_loop()
        began = loop.time()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[envelope.id] = _Pending(future, recipient, time.monotonic())
        # A timer on the future, not asyncio.wait_for: that costs a task per request.
        timer = loop.call_at(deadline, self._time_out, envelope.id)
        token.link_future(future)
        task = asyncio.current_task()
        assert task is not None

        def cancel_publish() -> None:
            task.cancel()

        try:
            # While the request is being published (the connection may be down), the token
            # cancels the publish itself.
            token.add_callback(cancel_publish)
            try:
                await self._transport.send(
                    envelope, routing_key(recipient.key, recipient.type), self.reply_to, deadline
                )
            except PublishTimeoutError as e:
                raise self._timeout_error(recipient, envelope.id, f" (not sent: {e})") from e
            finally:
                token.remove_callback(cancel_publish)
            result = await future
            outcome = "ok"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            self._cancel_remote(envelope)
            raise
        except TimeoutError:
            outcome = "timeout"
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            timer.cancel()
            self._pending.pop(envelope.id, None)
            self._metrics.rpc_seconds.labels(outcome).observe(loop.time() - began)

    def _timeout_error(
        self, recipient: AgentId | None, request_id: str, why: str = ""
    ) -> RpcTimeoutError:
        return RpcTimeoutError(
            f"No response from {recipient} within {self._settings.rpc_timeout:g} s (message "
            f"{request_id}){why}; it may still be handled. Retry with the same message_id to "
            "get its response without applying it twice."
        )

    def _time_out(self, request_id: str) -> None:
        pending = self._pending.get(request_id)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(self._timeout_error(pending.recipient, request_id))

    def _cancel_remote(self, request: Envelope) -> None:
        """Tell the recipient's worker, in the background, that nobody waits for ``request``."""
        task = asyncio.ensure_future(self._send_cancel(request))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _send_cancel(self, request: Envelope) -> None:
        assert request.recipient is not None
        cancel = Envelope(
            id=f"{request.id}:cancel",
            source=request.source,
            type="cancel",
            kind=n.KIND_CANCEL,
            data=b"",
            content_type="application/json",
            recipient=request.recipient,
            correlation=request.id,
        )
        key = routing_key(request.recipient.key, request.recipient.type)
        loop = asyncio.get_running_loop()
        try:
            await self._transport.send(cancel, key, self.reply_to, loop.time() + CANCEL_BOUND)
        except Exception as e:
            logger.warning("could not tell %s to cancel %s: %s", request.recipient, request.id, e)

    async def on_reply(self, message: DeliveredMessage) -> None:
        try:
            properties = message.header.properties
            envelope = decode(properties.headers, properties.content_type, message.body)
        except InvalidMessage as e:
            logger.warning("ignoring an invalid reply: %s", e)
            return
        pending = self._pending.get(envelope.correlation or properties.correlation_id or "")
        if pending is None or pending.future.done():
            return  # a late or repeated response: the caller no longer waits
        future = pending.future
        if envelope.kind == n.KIND_ERROR:
            future.set_exception(
                rebuild_error(envelope.error_type or "Exception", envelope.data.decode())
            )
            return
        try:
            future.set_result(decode_response(self._serializers, envelope))
        except Exception as e:
            future.set_exception(e)

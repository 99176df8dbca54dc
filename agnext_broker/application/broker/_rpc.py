"""The calling side of RPC: requests, their correlated responses, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, NamedTuple

from aiormq.abc import DeliveredMessage

from ...base import AgentId, CancellationToken, SerializationRegistry, UndeliverableException
from . import _names as n
from ._errors import rebuild_error
from ._replies import decode_response
from ._routing import routing_key
from ._settings import BrokerSettings
from ._transport import Transport
from ._wire import Envelope, InvalidMessage, decode

logger = logging.getLogger("agnext_broker")


class _Pending(NamedTuple):
    future: asyncio.Future[Any]
    recipient: AgentId
    sent_at: float  # time.monotonic()


class RpcClient:
    """Sends requests and matches the responses on this process's reply queue to them."""

    def __init__(
        self, transport: Transport, serializers: SerializationRegistry, settings: BrokerSettings
    ) -> None:
        self._transport = transport
        self._serializers = serializers
        self._settings = settings
        self._pending: dict[str, _Pending] = {}
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

    async def request(self, envelope: Envelope, token: CancellationToken) -> Any:
        """Publish a request to its recipient and wait for the response (or its error)."""
        recipient = envelope.recipient
        assert recipient is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[envelope.id] = _Pending(future, recipient, time.monotonic())
        try:
            await self._transport.send(
                envelope, routing_key(recipient.key, recipient.type), self.reply_to
            )
            token.link_future(future)
            # A timer on the future, not asyncio.wait_for: that costs a task per request.
            timer = asyncio.get_running_loop().call_later(
                self._settings.rpc_timeout, self._time_out, envelope.id
            )
            try:
                return await future
            except asyncio.CancelledError:
                await self._cancel_remote(envelope)
                raise
            finally:
                timer.cancel()
        finally:
            self._pending.pop(envelope.id, None)

    def _time_out(self, request_id: str) -> None:
        pending = self._pending.get(request_id)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(
                TimeoutError(
                    f"No response from {pending.recipient} within "
                    f"{self._settings.rpc_timeout:g} s (message {request_id}); it may still be "
                    "handled. Retry with the same message_id to get its response without "
                    "applying it twice."
                )
            )

    async def _cancel_remote(self, request: Envelope) -> None:
        """Tell the recipient's worker that nobody waits for ``request`` any more."""
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
        try:
            await self._transport.send(cancel, key, self.reply_to)
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

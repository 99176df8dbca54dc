"""Applies a runtime's intervention handlers, in order, to sends, publishes and responses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..base import (
    AgentId,
    DropMessage,
    InterventionHandler,
    MessageContext,
    MessageDroppedException,
)

logger = logging.getLogger("agnext_broker")


def _dropped(value: Any) -> bool:
    return value is DropMessage or isinstance(value, DropMessage)


def _no_change(value: Any, message: Any, hook: str, handler: InterventionHandler) -> Any:
    if value is None:
        logger.warning(
            "%s.%s returned None; treated as no change (return DropMessage to drop)",
            type(handler).__name__,
            hook,
        )
        return message
    return value


class Interventions:
    def __init__(self, handlers: Sequence[InterventionHandler] | None) -> None:
        self._handlers = tuple(handlers or ())
        self.active = bool(self._handlers)

    async def on_send(self, message: Any, ctx: MessageContext, recipient: AgentId) -> Any:
        """The message as rewritten by the handlers.

        Raises:
            MessageDroppedException: a handler dropped it.
        """
        for handler in self._handlers:
            result = await handler.on_send(message, message_context=ctx, recipient=recipient)
            if _dropped(result):
                raise MessageDroppedException(
                    f"{type(handler).__name__}.on_send dropped a message to {recipient}."
                )
            message = _no_change(result, message, "on_send", handler)
        return message

    async def on_publish(self, message: Any, ctx: MessageContext) -> Any:
        """The message as rewritten by the handlers, or ``DropMessage`` if one dropped it."""
        for handler in self._handlers:
            result = await handler.on_publish(message, message_context=ctx)
            if _dropped(result):
                logger.info(
                    "%s.on_publish dropped an event to %s", type(handler).__name__, ctx.topic_id
                )
                return DropMessage
            message = _no_change(result, message, "on_publish", handler)
        return message

    async def on_response(self, message: Any, sender: AgentId, recipient: AgentId | None) -> Any:
        """The response as rewritten by the handlers.

        Raises:
            MessageDroppedException: a handler dropped it.
        """
        for handler in self._handlers:
            result = await handler.on_response(message, sender=sender, recipient=recipient)
            if _dropped(result):
                raise MessageDroppedException(
                    f"{type(handler).__name__}.on_response dropped the response of {sender}."
                )
            message = _no_change(result, message, "on_response", handler)
        return message

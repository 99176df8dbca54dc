from __future__ import annotations

from typing import Any, Protocol, final

from ._agent_id import AgentId
from ._message_context import MessageContext


@final
class DropMessage:
    """Returned (the class itself) by an intervention handler to drop the message."""


class InterventionHandler(Protocol):
    """Sees every message the runtime accepts, and may rewrite it or drop it.

    Returning ``None`` means "no change" (with a warning); return :class:`DropMessage` to drop.
    A dropped send raises :class:`MessageDroppedException` in the caller.
    """

    async def on_send(
        self, message: Any, *, message_context: MessageContext, recipient: AgentId
    ) -> Any | type[DropMessage]: ...

    async def on_publish(
        self, message: Any, *, message_context: MessageContext
    ) -> Any | type[DropMessage]: ...

    async def on_response(
        self, message: Any, *, sender: AgentId, recipient: AgentId | None
    ) -> Any | type[DropMessage]: ...


class DefaultInterventionHandler(InterventionHandler):
    """Passes every message through unchanged; subclass it and override what you need."""

    async def on_send(
        self, message: Any, *, message_context: MessageContext, recipient: AgentId
    ) -> Any | type[DropMessage]:
        return message

    async def on_publish(
        self, message: Any, *, message_context: MessageContext
    ) -> Any | type[DropMessage]:
        return message

    async def on_response(
        self, message: Any, *, sender: AgentId, recipient: AgentId | None
    ) -> Any | type[DropMessage]:
        return message

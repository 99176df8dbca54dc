"""Calls one agent's handler with the handler context set (the caller holds the agent's turn)."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

from ..base import Agent, MessageContext
from ..base._contexts import HandlerFrame, enter_handler_frame, exit_handler_frame
from ._telemetry import Telemetry


async def invoke_handler(
    agent: Agent,
    message: Any,
    ctx: MessageContext,
    turn: Hashable,
    path: tuple[Hashable, ...],
    telemetry: Telemetry,
    message_ids: Iterator[str] | None = None,
) -> Any:
    """Return what ``agent.on_message`` returns, inside a ``process`` span when tracing.
    Sends made by the handler carry the call path ``(*path, turn)``, and take their ids from
    ``message_ids`` when given."""
    frame_token = enter_handler_frame(
        HandlerFrame(agent.id, turn, path, message_ids, ctx.message_id)
    )
    try:
        if telemetry.enabled:
            with telemetry.span("process", agent.id, ctx.message_id):
                return await agent.on_message(message, ctx)
        return await agent.on_message(message, ctx)
    finally:
        exit_handler_frame(frame_token)

"""Runs one message through one agent's handler, in the agent's turn."""

from __future__ import annotations

from typing import Any

from ..base import MessageContext
from ..base._contexts import HandlerFrame, enter_handler_frame, exit_handler_frame
from ._agents import Activation
from ._telemetry import Telemetry


async def invoke_in_turn(
    activation: Activation,
    message: Any,
    ctx: MessageContext,
    chain_id: str,
    telemetry: Telemetry,
) -> Any:
    """Wait for the agent's turn (unless its class handles concurrently), then call its handler
    with the handler context set; returns what the handler returned."""
    gate = activation.gate
    turn_based = not activation.concurrent
    if turn_based and not gate.try_enter(chain_id):
        await gate.enter(chain_id)
    try:
        agent = activation.agent
        frame_token = enter_handler_frame(HandlerFrame(agent.id, chain_id))
        try:
            if telemetry.enabled:
                with telemetry.span("process", agent.id, **{"agnext.message_id": ctx.message_id}):
                    return await agent.on_message(message, ctx)
            return await agent.on_message(message, ctx)
        finally:
            exit_handler_frame(frame_token)
    finally:
        if turn_based:
            gate.leave()

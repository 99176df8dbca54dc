"""Reusable agents: RoutedAgent with its handler decorators, and ClosureAgent."""

from ._closure_agent import ClosureAgent, ClosureContext
from ._routed_agent import MessageHandler, RoutedAgent, event, message_handler, rpc

__all__ = [
    "ClosureAgent",
    "ClosureContext",
    "MessageHandler",
    "RoutedAgent",
    "event",
    "message_handler",
    "rpc",
]

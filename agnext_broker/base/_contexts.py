"""Context variables the runtimes set around factories, subscription callbacks and handlers."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, ClassVar, NamedTuple

if TYPE_CHECKING:
    from ._agent_id import AgentId, AgentType
    from ._agent_runtime import AgentRuntime


class HandlerFrame(NamedTuple):
    """What the runtime knows about the handler running in the current task."""

    agent_id: AgentId
    turn_id: Hashable
    path: tuple[Hashable, ...]
    # The ids of the messages the handler sends and publishes, in order, when they must be the
    # same each time the handler runs on the same message (see ``new_message_id``).
    message_ids: Iterator[str] | None = None
    message_id: str | None = None  # the message being handled (for log lines)


_HANDLER_FRAME: ContextVar[HandlerFrame | None] = ContextVar("agnext_handler_frame", default=None)


class _StaticContext:
    def __init__(self) -> None:
        raise RuntimeError(f"{type(self).__name__} is a static class; use its class methods.")


class AgentInstantiationContext(_StaticContext):
    """Tells an agent's constructor, called by its factory, which runtime and id it is for."""

    _VAR: ClassVar[ContextVar[tuple[AgentRuntime, AgentId] | None]] = ContextVar(
        "agnext_agent_instantiation", default=None
    )

    @classmethod
    @contextmanager
    def populate_context(cls, ctx: tuple[AgentRuntime, AgentId]) -> Iterator[None]:
        token = cls._VAR.set(ctx)
        try:
            yield
        finally:
            cls._VAR.reset(token)

    @classmethod
    def _get(cls) -> tuple[AgentRuntime, AgentId]:
        ctx = cls._VAR.get()
        if ctx is None:
            raise RuntimeError(
                "AgentInstantiationContext is only available while the runtime calls an agent "
                "factory. Register the agent (MyAgent.register(runtime, ...)) instead of "
                "instantiating it directly."
            )
        return ctx

    @classmethod
    def current_runtime(cls) -> AgentRuntime:
        return cls._get()[0]

    @classmethod
    def current_agent_id(cls) -> AgentId:
        return cls._get()[1]

    @classmethod
    def is_in_factory_call(cls) -> bool:
        return cls._VAR.get() is not None


class SubscriptionInstantiationContext(_StaticContext):
    """Tells a class subscription callback which agent type is being registered."""

    _VAR: ClassVar[ContextVar[AgentType | None]] = ContextVar(
        "agnext_subscription_instantiation", default=None
    )

    @classmethod
    @contextmanager
    def populate_context(cls, ctx: AgentType) -> Iterator[None]:
        token = cls._VAR.set(ctx)
        try:
            yield
        finally:
            cls._VAR.reset(token)

    @classmethod
    def agent_type(cls) -> AgentType:
        ctx = cls._VAR.get()
        if ctx is None:
            raise RuntimeError(
                "SubscriptionInstantiationContext is only available while an agent type is "
                "being registered."
            )
        return ctx


class MessageHandlerContext(_StaticContext):
    """Tells code running inside a message handler which agent is handling."""

    @classmethod
    @contextmanager
    def populate_context(cls, ctx: AgentId) -> Iterator[None]:
        token = _HANDLER_FRAME.set(HandlerFrame(ctx, object(), ()))
        try:
            yield
        finally:
            _HANDLER_FRAME.reset(token)

    @classmethod
    def agent_id(cls) -> AgentId:
        frame = _HANDLER_FRAME.get()
        if frame is None:
            raise RuntimeError("MessageHandlerContext.agent_id() must be called within a handler.")
        return frame.agent_id

    @classmethod
    def current_agent_id(cls) -> AgentId | None:
        """The handling agent's id, or ``None`` outside any handler."""
        frame = _HANDLER_FRAME.get()
        return None if frame is None else frame.agent_id


def current_handler_frame() -> HandlerFrame | None:
    return _HANDLER_FRAME.get()


def enter_handler_frame(frame: HandlerFrame) -> object:
    """Set the current task's frame; pass the returned token to :func:`exit_handler_frame`."""
    return _HANDLER_FRAME.set(frame)


def exit_handler_frame(token: object) -> None:
    _HANDLER_FRAME.reset(token)  # type: ignore[arg-type]

"""ClosureAgent: an agent made of one async function, handy for collecting results."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar, get_type_hints

from ..base import (
    AgentId,
    AgentInstantiationContext,
    AgentRuntime,
    AgentType,
    BaseAgent,
    CancellationToken,
    CantHandleException,
    MessageContext,
    Subscription,
    SubscriptionInstantiationContext,
    TopicId,
    try_get_known_serializers_for_type,
)
from ..base._exceptions import SerializationError
from ._type_hints import types_of_annotation

T = TypeVar("T")


class ClosureContext(Protocol):
    """What a closure can do: know its id, send and publish."""

    @property
    def id(self) -> AgentId: ...

    async def send_message(
        self,
        message: Any,
        recipient: AgentId,
        *,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> Any: ...

    async def publish_message(
        self,
        message: Any,
        topic_id: TopicId,
        *,
        cancellation_token: CancellationToken | None = None,
    ) -> None: ...


Closure = Callable[[ClosureContext, T, MessageContext], Awaitable[Any]]


def get_handled_types_from_closure(closure: Closure[Any]) -> Sequence[type]:
    """The message classes a closure accepts, read from its second parameter's annotation."""
    params = list(inspect.signature(closure).parameters)
    if len(params) != 3:
        raise AssertionError("A closure takes (context, message, ctx).")
    hints = get_type_hints(closure)
    if "return" not in hints:
        raise AssertionError("Annotate the closure's return type.")
    target_types = types_of_annotation(hints.get(params[1]))
    if target_types is None:
        raise AssertionError("Annotate the closure's message parameter with the message type.")
    return target_types


class ClosureAgent(BaseAgent, ClosureContext):
    """An agent whose every message goes to one closure ``(context, message, ctx)``."""

    def __init__(
        self,
        description: str,
        closure: Closure[T],
        *,
        unknown_type_policy: Literal["error", "warn", "ignore"] = "warn",
    ) -> None:
        if not AgentInstantiationContext.is_in_factory_call():
            raise RuntimeError(
                "ClosureAgent is created by the runtime: use ClosureAgent.register_closure()."
            )
        self._expected_types = tuple(get_handled_types_from_closure(closure))
        self._closure: Closure[Any] = closure
        self._unknown_type_policy = unknown_type_policy
        super().__init__(description)

    @property
    def runtime(self) -> AgentRuntime:
        return self._runtime

    async def on_message_impl(self, message: Any, ctx: MessageContext) -> Any:
        if type(message) not in self._expected_types:
            detail = (
                f"{self.id} received {type(message).__name__}; its closure accepts "
                f"{[t.__name__ for t in self._expected_types]}."
            )
            if self._unknown_type_policy == "error":
                raise CantHandleException(detail)
            if self._unknown_type_policy == "warn":
                warnings.warn(detail, stacklevel=1)
            return None
        return await self._closure(self, message, ctx)

    async def save_state(self) -> Mapping[str, Any]:
        return {}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        pass

    @classmethod
    async def register_closure(
        cls,
        runtime: AgentRuntime,
        type: str,
        closure: Closure[T],
        *,
        unknown_type_policy: Literal["error", "warn", "ignore"] = "warn",
        skip_direct_message_subscription: bool = False,
        description: str = "",
        subscriptions: Callable[[], list[Subscription] | Awaitable[list[Subscription]]]
        | None = None,
    ) -> AgentType:
        """Register ``closure`` as agent type ``type`` with the given subscriptions."""
        for message_type in get_handled_types_from_closure(closure):
            serializers = try_get_known_serializers_for_type(message_type)
            if not serializers:
                raise SerializationError(
                    f"Closure {getattr(closure, '__qualname__', closure)!s} accepts "
                    f"{message_type.__qualname__}, which cannot be serialized: make it a pydantic "
                    "model or a dataclass."
                )
            runtime.add_message_serializer(serializers)

        def factory() -> ClosureAgent:
            return ClosureAgent(description, closure, unknown_type_policy=unknown_type_policy)

        agent_type = await cls.register(
            runtime,
            type,
            factory,
            skip_class_subscriptions=True,
            skip_direct_message_subscription=skip_direct_message_subscription,
        )
        if subscriptions is not None:
            with SubscriptionInstantiationContext.populate_context(agent_type):
                result = subscriptions()
                listed = await result if inspect.isawaitable(result) else result
            for subscription in listed:
                await runtime.add_subscription(subscription)
        return agent_type

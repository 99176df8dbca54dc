from __future__ import annotations

import contextlib
import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar, final

from ._agent import Agent, AgentMetadata
from ._agent_id import AgentId, AgentType
from ._agent_runtime import AgentRuntime
from ._cancellation import CancellationToken
from ._contexts import AgentInstantiationContext, SubscriptionInstantiationContext
from ._message_context import MessageContext
from ._serialization import MessageSerializer, try_get_known_serializers_for_type
from ._subscription import (
    Subscription,
    TypePrefixSubscription,
    TypeSubscription,
    UnboundSubscription,
)
from ._topic import TopicId

BaseAgentT = TypeVar("BaseAgentT", bound="BaseAgent")


def subscription_factory(
    subscription: UnboundSubscription,
) -> Callable[[type[BaseAgentT]], type[BaseAgentT]]:
    """Class decorator: add subscriptions created when the class is registered."""

    def decorator(cls: type[BaseAgentT]) -> type[BaseAgentT]:
        cls.internal_unbound_subscriptions_list.append(subscription)
        return cls

    return decorator


def handles(
    message_type: type[Any],
    serializer: MessageSerializer[Any] | list[MessageSerializer[Any]] | None = None,
) -> Callable[[type[BaseAgentT]], type[BaseAgentT]]:
    """Class decorator: declare a message type the agent handles (for agents without routed
    handlers), so its serializer is registered with the agent."""

    def decorator(cls: type[BaseAgentT]) -> type[BaseAgentT]:
        if serializer is None:
            serializers = try_get_known_serializers_for_type(message_type)
        elif isinstance(serializer, Sequence):
            serializers = list(serializer)
        else:
            serializers = [serializer]
        if not serializers:
            raise ValueError(
                f"No serializer is known for {message_type.__qualname__}; pass serializer=... "
                "to @handles."
            )
        cls.internal_extra_handles_types.append((message_type, serializers))
        return cls

    return decorator


class BaseAgent(ABC, Agent):
    """Base class of agents: binding to a runtime, sending, publishing, registration.

    By default an agent handles one message at a time (turn-based). Set the class attribute
    ``concurrent_handling = True`` to let one agent handle several messages at once.
    """

    concurrent_handling: ClassVar[bool] = False
    internal_unbound_subscriptions_list: ClassVar[list[UnboundSubscription]] = []
    internal_extra_handles_types: ClassVar[
        list[tuple[type[Any], list[MessageSerializer[Any]]]]
    ] = []

    _id: AgentId
    _runtime: AgentRuntime

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Each subclass gets its own lists, so decorating one class never affects another.
        cls.internal_extra_handles_types = []
        cls.internal_unbound_subscriptions_list = []

    def __init__(self, description: str) -> None:
        if AgentInstantiationContext.is_in_factory_call():
            self._runtime = AgentInstantiationContext.current_runtime()
            self._id = AgentInstantiationContext.current_agent_id()
        if not isinstance(description, str):
            raise ValueError("Agent description must be a string.")
        self._description = description

    @classmethod
    def _handles_types(cls) -> list[tuple[type[Any], list[MessageSerializer[Any]]]]:
        return cls.internal_extra_handles_types

    @classmethod
    def _unbound_subscriptions(cls) -> list[UnboundSubscription]:
        return cls.internal_unbound_subscriptions_list

    @property
    def metadata(self) -> AgentMetadata:
        return AgentMetadata(key=self._id.key, type=self._id.type, description=self._description)

    async def bind_id_and_runtime(self, id: AgentId, runtime: AgentRuntime) -> None:
        if hasattr(self, "_id") and self._id != id:
            raise RuntimeError(f"Agent is already bound to {self._id}, not {id}.")
        if hasattr(self, "_runtime") and self._runtime is not runtime:
            raise RuntimeError("Agent is already bound to a different runtime.")
        self._id = id
        self._runtime = runtime

    @property
    def type(self) -> str:
        return self._id.type

    @property
    def id(self) -> AgentId:
        return self._id

    @property
    def runtime(self) -> AgentRuntime:
        return self._runtime

    @final
    async def on_message(self, message: Any, ctx: MessageContext) -> Any:
        return await self.on_message_impl(message, ctx)

    @abstractmethod
    async def on_message_impl(self, message: Any, ctx: MessageContext) -> Any: ...

    async def send_message(
        self,
        message: Any,
        recipient: AgentId,
        *,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> Any:
        """Send ``message`` to ``recipient`` as this agent (see AgentRuntime.send_message)."""
        return await self._runtime.send_message(
            message,
            recipient,
            sender=self._id,
            cancellation_token=cancellation_token,
            message_id=message_id,
        )

    async def publish_message(
        self,
        message: Any,
        topic_id: TopicId,
        *,
        cancellation_token: CancellationToken | None = None,
    ) -> None:
        """Publish ``message`` to ``topic_id`` as this agent (it does not receive it itself)."""
        await self._runtime.publish_message(
            message, topic_id, sender=self._id, cancellation_token=cancellation_token
        )

    async def save_state(self) -> Mapping[str, Any]:
        warnings.warn(
            f"{type(self).__name__}.save_state is not implemented; its state is not saved.",
            stacklevel=2,
        )
        return {}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        warnings.warn(
            f"{type(self).__name__}.load_state is not implemented; the state is ignored.",
            stacklevel=2,
        )

    async def close(self) -> None:
        pass

    @classmethod
    async def _class_subscriptions(cls, agent_type: AgentType) -> list[Subscription]:
        subscriptions: list[Subscription] = []
        with SubscriptionInstantiationContext.populate_context(agent_type):
            for unbound in cls._unbound_subscriptions():
                result = unbound()
                subscriptions.extend(await result if inspect.isawaitable(result) else result)
        return subscriptions

    @classmethod
    async def register(
        cls,
        runtime: AgentRuntime,
        type: str,
        factory: Callable[[], Self | Awaitable[Self]],
        *,
        skip_class_subscriptions: bool = False,
        skip_direct_message_subscription: bool = False,
    ) -> AgentType:
        """Register a factory for agents of this class under ``type``, with the class's
        subscriptions and the direct-message prefix subscription ``"<type>:"``.

        Raises:
            SerializationError: a handled message type cannot be serialized.
            ValueError: ``type`` is already registered.
        """
        # Serializers first: a class whose messages cannot be serialized registers nothing.
        for _message_type, serializers in cls._handles_types():
            runtime.add_message_serializer(serializers)
        agent_type = await runtime.register_factory(type, factory, expected_class=cls)
        if not skip_class_subscriptions:
            for subscription in await cls._class_subscriptions(agent_type):
                await runtime.add_subscription(subscription)
        if not skip_direct_message_subscription:
            await runtime.add_subscription(
                TypePrefixSubscription(f"{agent_type.type}:", agent_type)
            )
        return agent_type

    async def register_instance(
        self,
        runtime: AgentRuntime,
        agent_id: AgentId,
        *,
        skip_class_subscriptions: bool = True,
        skip_direct_message_subscription: bool = False,
    ) -> AgentId:
        """Register this very instance under ``agent_id``, subscribed to topic type
        ``agent_id.key``."""
        for _message_type, serializers in self._handles_types():
            runtime.add_message_serializer(serializers)
        agent_id = await runtime.register_agent_instance(self, agent_id)
        await runtime.add_subscription(TypeSubscription(agent_id.key, agent_id.type))
        if not skip_class_subscriptions:
            for subscription in await self._class_subscriptions(AgentType(agent_id.type)):
                await runtime.add_subscription(subscription)
        if not skip_direct_message_subscription:
            with contextlib.suppress(ValueError):  # another instance of the type added it
                await runtime.add_subscription(
                    TypePrefixSubscription(f"{agent_id.type}:", agent_id.type)
                )
        return agent_id

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

from ._agent import Agent, AgentMetadata
from ._agent_id import AgentId, AgentType
from ._cancellation import CancellationToken
from ._serialization import MessageSerializer
from ._subscription import Subscription
from ._topic import TopicId

T = TypeVar("T", bound=Agent)


@runtime_checkable
class AgentRuntime(Protocol):
    """The API agents and applications use; every runtime of agnext-broker implements it."""

    async def send_message(
        self,
        message: Any,
        recipient: AgentId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> Any:
        """Send a message to one agent and return its handler's result.

        Raises:
            UndeliverableException: no agent type of that name is registered (a LookupError).
            CantHandleException: the recipient has no handler for the message.
            MessageDroppedException: an intervention handler dropped the message.
            asyncio.CancelledError: ``cancellation_token`` was cancelled.
            Exception: whatever the recipient's handler raised, with its type and message.
        """
        ...

    async def publish_message(
        self,
        message: Any,
        topic_id: TopicId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> None:
        """Publish an event to every subscription matching ``topic_id`` (not to ``sender``)."""
        ...

    async def register_factory(
        self,
        type: str | AgentType,
        agent_factory: Callable[[], T | Awaitable[T]],
        *,
        expected_class: type[T] | None = None,
    ) -> AgentType:
        """Register a factory that creates agents of ``type`` on first use.

        Raises:
            ValueError: ``type`` is already registered.
        """
        ...

    async def register_agent_instance(self, agent_instance: Agent, agent_id: AgentId) -> AgentId:
        """Register an already-built agent under ``agent_id``."""
        ...

    async def try_get_underlying_agent_instance(
        self,
        id: AgentId,
        type: type[T] = Agent,  # type: ignore[assignment]
    ) -> T:
        """The agent object itself, created if needed.

        Raises:
            LookupError: the agent type is unknown.
            NotAccessibleError: the agent lives elsewhere.
            TypeError: the agent is not an instance of ``type``.
        """
        ...

    @overload
    async def get(self, id: AgentId, /, *, lazy: bool = ...) -> AgentId: ...

    @overload
    async def get(
        self, type: AgentType | str, /, key: str = ..., *, lazy: bool = ...
    ) -> AgentId: ...

    async def get(
        self, id_or_type: AgentId | AgentType | str, /, key: str = "default", *, lazy: bool = True
    ) -> AgentId:
        """The id of an agent; with ``lazy=False`` the agent is created now."""
        ...

    async def save_state(self) -> Mapping[str, Any]:
        """The state of every agent, keyed ``"type/key"``."""
        ...

    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`save_state` returned."""
        ...

    async def agent_metadata(self, agent: AgentId) -> AgentMetadata: ...

    async def agent_save_state(self, agent: AgentId) -> Mapping[str, Any]: ...

    async def agent_load_state(self, agent: AgentId, state: Mapping[str, Any]) -> None: ...

    async def add_subscription(self, subscription: Subscription) -> None:
        """Add a subscription.

        Raises:
            ValueError: an equal subscription exists.
        """
        ...

    async def remove_subscription(self, id: str) -> None:
        """Remove a subscription by id.

        Raises:
            ValueError: no subscription has this id.
        """
        ...

    def add_message_serializer(
        self, serializer: MessageSerializer[Any] | Sequence[MessageSerializer[Any]]
    ) -> None:
        """Register serializers for message types the agents exchange."""
        ...

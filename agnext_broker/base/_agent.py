from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

from ._agent_id import AgentId
from ._message_context import MessageContext

if TYPE_CHECKING:
    from ._agent_runtime import AgentRuntime


class AgentMetadata(TypedDict):
    type: str
    key: str
    description: str


@runtime_checkable
class Agent(Protocol):
    """What the runtime needs of an agent. Subclass :class:`BaseAgent` rather than implement it."""

    @property
    def metadata(self) -> AgentMetadata: ...

    @property
    def id(self) -> AgentId: ...

    async def bind_id_and_runtime(self, id: AgentId, runtime: AgentRuntime) -> None:
        """Bind the agent to its id and runtime (called once, by the runtime)."""
        ...

    async def on_message(self, message: Any, ctx: MessageContext) -> Any:
        """Handle a message; the return value is the RPC response (``None`` for events).

        Raises:
            CantHandleException: the agent has no handler for this message.
        """
        ...

    async def save_state(self) -> Mapping[str, Any]:
        """Return the agent's state; it must be JSON serializable."""
        ...

    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore the state returned by :meth:`save_state`."""
        ...

    async def close(self) -> None:
        """Called when the runtime closes or deactivates the agent."""
        ...

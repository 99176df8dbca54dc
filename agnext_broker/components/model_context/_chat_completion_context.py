"""The interface of a chat completion context: the messages an agent keeps for its model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from .._component_config import ComponentBase, ComponentType
from ..models._types import LLMMessage


class ChatCompletionContextState(BaseModel):
    """What a context saves: its messages, in autogen-core's JSON."""

    messages: list[LLMMessage] = Field(default_factory=list)


class ChatCompletionContext(ABC, ComponentBase[BaseModel]):
    """Stores an agent's LLM messages and decides which of them the model sees.

    Each implementation has its own recall strategy in :meth:`get_messages`; all of them keep
    every message added, and save and load them as JSON, so an agent that keeps its context in
    its state resumes its conversation on another worker.

    Args:
        initial_messages: messages the context starts with.
    """

    component_type: ClassVar[ComponentType] = "chat_completion_context"

    def __init__(self, initial_messages: list[LLMMessage] | None = None) -> None:
        self._messages: list[LLMMessage] = list(initial_messages or [])
        self._initial_messages = initial_messages

    async def add_message(self, message: LLMMessage) -> None:
        """Add a message at the end of the context."""
        self._messages.append(message)

    @abstractmethod
    async def get_messages(self) -> list[LLMMessage]:
        """The messages to send to the model, by this context's strategy."""

    async def clear(self) -> None:
        """Forget every message."""
        self._messages = []

    async def save_state(self) -> Mapping[str, Any]:
        """Every message, as a JSON-able mapping."""
        return ChatCompletionContextState(messages=self._messages).model_dump(mode="json")

    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the messages with those of a saved state.

        Raises:
            pydantic.ValidationError: the state is not a saved context state.
        """
        self._messages = ChatCompletionContextState.model_validate(state).messages

from __future__ import annotations

from typing import Self

from pydantic import BaseModel

from .._component_config import Component
from ..models._types import FunctionExecutionResultMessage, LLMMessage
from ._chat_completion_context import ChatCompletionContext


class BufferedChatCompletionContextConfig(BaseModel):
    buffer_size: int
    initial_messages: list[LLMMessage] | None = None


class BufferedChatCompletionContext(
    ChatCompletionContext, Component[BufferedChatCompletionContextConfig]
):
    """A chat completion context that gives the model the last ``buffer_size`` messages.

    A function result message at the start of that window is left out too, since the model
    would see results without the calls they answer.

    Args:
        buffer_size: how many recent messages the model sees (more than 0).
        initial_messages: messages the context starts with.

    Raises:
        ValueError: ``buffer_size`` is not positive.
    """

    component_config_schema = BufferedChatCompletionContextConfig
    component_provider_override = "agnext_broker.model_context.BufferedChatCompletionContext"

    def __init__(self, buffer_size: int, initial_messages: list[LLMMessage] | None = None) -> None:
        super().__init__(initial_messages)
        if buffer_size <= 0:
            raise ValueError("buffer_size must be greater than 0.")
        self._buffer_size = buffer_size

    async def get_messages(self) -> list[LLMMessage]:
        """At most ``buffer_size`` of the most recent messages."""
        messages = self._messages[-self._buffer_size :]
        if messages and isinstance(messages[0], FunctionExecutionResultMessage):
            messages = messages[1:]
        return messages

    def _to_config(self) -> BufferedChatCompletionContextConfig:
        return BufferedChatCompletionContextConfig(
            buffer_size=self._buffer_size, initial_messages=self._initial_messages
        )

    @classmethod
    def _from_config(cls, config: BufferedChatCompletionContextConfig) -> Self:
        return cls(buffer_size=config.buffer_size, initial_messages=config.initial_messages)

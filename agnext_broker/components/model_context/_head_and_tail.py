from __future__ import annotations

from typing import Self

from pydantic import BaseModel

from .._component_config import Component
from ..models._function_call import FunctionCall
from ..models._types import (
    AssistantMessage,
    FunctionExecutionResultMessage,
    LLMMessage,
    UserMessage,
)
from ._chat_completion_context import ChatCompletionContext


class HeadAndTailChatCompletionContextConfig(BaseModel):
    head_size: int
    tail_size: int
    initial_messages: list[LLMMessage] | None = None


class HeadAndTailChatCompletionContext(
    ChatCompletionContext, Component[HeadAndTailChatCompletionContextConfig]
):
    """A chat completion context that gives the model the first ``head_size`` and the last
    ``tail_size`` messages, with a ``UserMessage`` from ``"System"`` saying
    ``"Skipped N messages."`` in between, as autogen-core does.

    A head that ends with function calls drops them, and a tail that starts with function
    results drops those, so the model never sees a call without its results or the reverse.

    Args:
        head_size: how many of the first messages the model sees (more than 0).
        tail_size: how many of the last messages the model sees (more than 0).
        initial_messages: messages the context starts with.

    Raises:
        ValueError: ``head_size`` or ``tail_size`` is not positive.
    """

    component_config_schema = HeadAndTailChatCompletionContextConfig
    component_provider_override = "agnext_broker.model_context.HeadAndTailChatCompletionContext"

    def __init__(
        self, head_size: int, tail_size: int, initial_messages: list[LLMMessage] | None = None
    ) -> None:
        super().__init__(initial_messages)
        if head_size <= 0:
            raise ValueError("head_size must be greater than 0.")
        if tail_size <= 0:
            raise ValueError("tail_size must be greater than 0.")
        self._head_size = head_size
        self._tail_size = tail_size

    async def get_messages(self) -> list[LLMMessage]:
        skipped = len(self._messages) - self._head_size - self._tail_size
        if skipped <= 0:
            return list(self._messages)
        head = self._messages[: self._head_size]
        if head and _is_function_calls(head[-1]):
            head = head[:-1]
        tail = self._messages[-self._tail_size :]
        if tail and isinstance(tail[0], FunctionExecutionResultMessage):
            tail = tail[1:]
        # The count is of the messages between head and tail, as in autogen-core: a call or
        # result trimmed from the edges above is not counted.
        placeholder = UserMessage(content=f"Skipped {skipped} messages.", source="System")
        return [*head, placeholder, *tail]

    def _to_config(self) -> HeadAndTailChatCompletionContextConfig:
        return HeadAndTailChatCompletionContextConfig(
            head_size=self._head_size,
            tail_size=self._tail_size,
            initial_messages=self._initial_messages,
        )

    @classmethod
    def _from_config(cls, config: HeadAndTailChatCompletionContextConfig) -> Self:
        return cls(
            head_size=config.head_size,
            tail_size=config.tail_size,
            initial_messages=config.initial_messages,
        )


def _is_function_calls(message: LLMMessage) -> bool:
    return (
        isinstance(message, AssistantMessage)
        and isinstance(message.content, list)
        and all(isinstance(item, FunctionCall) for item in message.content)
    )

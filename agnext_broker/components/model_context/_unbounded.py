from __future__ import annotations

from typing import Self

from pydantic import BaseModel

from .._component_config import Component
from ..models._types import LLMMessage
from ._chat_completion_context import ChatCompletionContext


class UnboundedChatCompletionContextConfig(BaseModel):
    initial_messages: list[LLMMessage] | None = None


class UnboundedChatCompletionContext(
    ChatCompletionContext, Component[UnboundedChatCompletionContextConfig]
):
    """A chat completion context that gives the model every message.

    Args:
        initial_messages: messages the context starts with.
    """

    component_config_schema = UnboundedChatCompletionContextConfig
    component_provider_override = "agnext_broker.model_context.UnboundedChatCompletionContext"

    async def get_messages(self) -> list[LLMMessage]:
        return list(self._messages)

    def _to_config(self) -> UnboundedChatCompletionContextConfig:
        return UnboundedChatCompletionContextConfig(initial_messages=self._initial_messages)

    @classmethod
    def _from_config(cls, config: UnboundedChatCompletionContextConfig) -> Self:
        return cls(initial_messages=config.initial_messages)

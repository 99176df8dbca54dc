from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic import BaseModel

from .._component_config import Component, ComponentModel
from ..models._function_call import FunctionCall
from ..models._model_client import ChatCompletionClient
from ..models._types import AssistantMessage, FunctionExecutionResultMessage, LLMMessage
from ._chat_completion_context import ChatCompletionContext


class TokenLimitedChatCompletionContextConfig(BaseModel):
    model_client: ComponentModel
    token_limit: int | None = None
    tool_schema: list[dict[str, Any]] | None = None
    initial_messages: list[LLMMessage] | None = None


class TokenLimitedChatCompletionContext(
    ChatCompletionContext, Component[TokenLimitedChatCompletionContextConfig]
):
    """A chat completion context that gives the model as many messages as fit a token budget,
    counted by a model client.

    Messages are dropped from the middle of the conversation until the rest fits, so both its
    beginning (usually the instructions) and its latest turns stay. Function results whose calls
    were dropped are left out too.

    Args:
        model_client: counts tokens (``count_tokens``, ``remaining_tokens``); it is not called.
        token_limit: the budget, counted with ``count_tokens``; when ``None``, the messages must
            leave ``remaining_tokens`` of the model's own window non-negative.
        tool_schema: tool schemas the model receives too, counted with the messages.
        initial_messages: messages the context starts with.

    Raises:
        ValueError: ``token_limit`` is not positive.
    """

    component_config_schema = TokenLimitedChatCompletionContextConfig
    component_provider_override = "agnext_broker.model_context.TokenLimitedChatCompletionContext"

    def __init__(
        self,
        model_client: ChatCompletionClient,
        *,
        token_limit: int | None = None,
        tool_schema: Sequence[Mapping[str, Any]] | None = None,
        initial_messages: list[LLMMessage] | None = None,
    ) -> None:
        super().__init__(initial_messages)
        if token_limit is not None and token_limit <= 0:
            raise ValueError("token_limit must be greater than 0.")
        self._token_limit = token_limit
        self._model_client = model_client
        self._tool_schema = [dict(schema) for schema in tool_schema or ()]

    async def get_messages(self) -> list[LLMMessage]:
        messages = list(self._messages)
        while messages and self._over_budget(messages):
            messages.pop(len(messages) // 2)
        called = {
            call.id
            for message in messages
            if isinstance(message, AssistantMessage) and isinstance(message.content, list)
            for call in message.content
            if isinstance(call, FunctionCall)
        }
        return [
            message
            for message in messages
            if not (
                isinstance(message, FunctionExecutionResultMessage)
                and any(result.call_id not in called for result in message.content)
            )
        ]

    def _over_budget(self, messages: list[LLMMessage]) -> bool:
        if self._token_limit is None:
            return self._model_client.remaining_tokens(messages, tools=self._tool_schema) < 0
        tokens = self._model_client.count_tokens(messages, tools=self._tool_schema)
        return tokens > self._token_limit

    def _to_config(self) -> TokenLimitedChatCompletionContextConfig:
        return TokenLimitedChatCompletionContextConfig(
            model_client=self._model_client.dump_component(),
            token_limit=self._token_limit,
            tool_schema=self._tool_schema or None,
            initial_messages=self._initial_messages,
        )

    @classmethod
    def _from_config(cls, config: TokenLimitedChatCompletionContextConfig) -> Self:
        return cls(
            ChatCompletionClient.load_component(config.model_client),
            token_limit=config.token_limit,
            tool_schema=config.tool_schema,
            initial_messages=config.initial_messages,
        )

"""A model client that only counts tokens (one per word), for the token-limited context."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Self

from pydantic import BaseModel

from agnext_broker import CancellationToken, Component
from agnext_broker.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    RequestUsage,
)


class WordCountingClientConfig(BaseModel):
    window: int


class WordCountingClient(ChatCompletionClient, Component[WordCountingClientConfig]):
    """Counts one token per word of every message's content; its window is ``window`` tokens."""

    component_type = "model"
    component_config_schema = WordCountingClientConfig

    def __init__(self, window: int = 1000) -> None:
        self.window = window

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = ()) -> int:
        return sum(len(str(message.content).split()) for message in messages)

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = ()) -> int:
        return self.window - self.count_tokens(messages, tools=tools)

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Any] = (),
        tool_choice: Any = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] | None = None,
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        raise NotImplementedError("this client only counts")

    def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Any] = (),
        tool_choice: Any = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] | None = None,
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        raise NotImplementedError("this client only counts")

    async def close(self) -> None:
        pass

    def actual_usage(self) -> RequestUsage:
        return RequestUsage(prompt_tokens=0, completion_tokens=0)

    def total_usage(self) -> RequestUsage:
        return RequestUsage(prompt_tokens=0, completion_tokens=0)

    @property
    def capabilities(self) -> ModelCapabilities:
        return {"vision": False, "function_calling": False, "json_output": False}

    @property
    def model_info(self) -> ModelInfo:
        return {
            "vision": False,
            "function_calling": False,
            "json_output": False,
            "family": ModelFamily.UNKNOWN,
            "structured_output": False,
        }

    def _to_config(self) -> WordCountingClientConfig:
        return WordCountingClientConfig(window=self.window)

    @classmethod
    def _from_config(cls, config: WordCountingClientConfig) -> Self:
        return cls(window=config.window)

"""A model client that answers from a script, and records what it was asked."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agnext_broker import CancellationToken, FunctionCall
from agnext_broker.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    RequestUsage,
)

NO_USAGE = RequestUsage(prompt_tokens=0, completion_tokens=0)


def calls(*calls: FunctionCall) -> CreateResult:
    """A completion that asks for these function calls."""
    return CreateResult(
        finish_reason="function_calls", content=list(calls), usage=NO_USAGE, cached=False
    )


def text(content: str) -> CreateResult:
    return CreateResult(finish_reason="stop", content=content, usage=NO_USAGE, cached=False)


@dataclass
class Request:
    messages: list[LLMMessage]
    tools: list[Any]


class ScriptedChatCompletionClient(ChatCompletionClient):
    """Answers each ``create`` with the next completion of ``script``."""

    component_type = "model"

    def __init__(self, script: Sequence[CreateResult]) -> None:
        self._script = list(script)
        self.requests: list[Request] = []

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
        self.requests.append(Request(list(messages), list(tools)))
        if not self._script:
            raise AssertionError("the model was asked more often than the script answers")
        return self._script.pop(0)

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
        raise NotImplementedError("the scripted client does not stream")

    async def close(self) -> None:
        pass

    def actual_usage(self) -> RequestUsage:
        return NO_USAGE

    def total_usage(self) -> RequestUsage:
        return NO_USAGE

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = ()) -> int:
        return 0

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = ()) -> int:
        return 1_000_000

    @property
    def capabilities(self) -> ModelCapabilities:
        return {"vision": False, "function_calling": True, "json_output": False}

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(
            vision=False,
            function_calling=True,
            json_output=False,
            family=ModelFamily.UNKNOWN,
            structured_output=False,
        )

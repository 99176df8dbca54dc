"""ReplayChatCompletionClient: a model client that answers from a script, for tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Self, cast

from pydantic import BaseModel

from ..._constants import EVENT_LOGGER_NAME
from ...base import CancellationToken
from .._component_config import Component
from ._model_client import _NO_EXTRA_ARGS, _NO_TOOLS, FixedModelInfoClient, ToolChoice
from ._model_info import ModelFamily, ModelInfo, validate_model_info
from ._types import CreateResult, LLMMessage, RequestUsage, added_usage

logger = logging.getLogger(EVENT_LOGGER_NAME)

_AVAILABLE_TOKENS = 10000


class ReplayChatCompletionClientConfig(BaseModel):
    """The configuration of a :class:`ReplayChatCompletionClient`."""

    chat_completions: Sequence[str | CreateResult]
    model_info: dict[str, Any] | None = None
    """A ModelInfo (a typing.TypedDict, which pydantic refuses as a field on Python 3.11)."""


class ReplayChatCompletionClient(FixedModelInfoClient, Component[ReplayChatCompletionClientConfig]):
    """Answers each call with the next of ``chat_completions``, in order, as autogen-ext's does.

    A string answer becomes a CreateResult with finish reason ``"stop"``; a CreateResult (for
    instance one whose content is a list of ``FunctionCall``) is returned as it is. Tokens are
    counted as words (whitespace-separated) of the messages' and the answers' text.
    ``create_stream`` yields a string answer word by word (each word but the last followed by a
    space), then its CreateResult; a CreateResult answer comes as the CreateResult alone.
    Every call is recorded in :attr:`create_calls`.

    Example::

        client = ReplayChatCompletionClient(["Hello!", "Goodbye."])
        result = await client.create([UserMessage(content="Hi", source="user")])
        assert result.content == "Hello!"

    Args:
        chat_completions: the answers, in the order they are given.
        model_info: what the client says it supports (nothing, of an unknown family, when not
            given).

    Raises:
        ValueError: ``"No more mock responses available"``, from a call after the last answer.
    """

    component_type = "replay_chat_completion_client"
    component_provider_override = "agnext_broker.models.ReplayChatCompletionClient"
    component_config_schema = ReplayChatCompletionClientConfig

    def __init__(
        self, chat_completions: Sequence[str | CreateResult], model_info: ModelInfo | None = None
    ) -> None:
        self.chat_completions = list(chat_completions)
        self.provided_message_count = len(self.chat_completions)
        if model_info is None:
            model_info = ModelInfo(
                vision=False,
                function_calling=False,
                json_output=False,
                family=ModelFamily.UNKNOWN,
                structured_output=False,
            )
        validate_model_info(model_info)
        self._model_info = model_info
        self._total_available_tokens = _AVAILABLE_TOKENS
        self._cur_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._current_index = 0
        self._cached_bool_value = True
        self._create_calls: list[dict[str, Any]] = []

    @property
    def create_calls(self) -> list[dict[str, Any]]:
        """The arguments of every ``create`` and ``create_stream`` call, in order."""
        return self._create_calls

    def _next(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Any],
        tool_choice: Any,
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
        cancellation_token: CancellationToken | None,
    ) -> tuple[str | CreateResult, RequestUsage]:
        if cancellation_token is not None and cancellation_token.is_cancelled():
            raise asyncio.CancelledError()
        if tool_choice != "auto":
            logger.warning("tool_choice parameter specified but is ignored in replay mode")
        if self._current_index >= len(self.chat_completions):
            raise ValueError("No more mock responses available")
        self._create_calls.append(
            {
                "messages": messages,
                "tools": tools,
                "tool_choice": tool_choice,
                "json_output": json_output,
                "extra_create_args": extra_create_args,
                "cancellation_token": cancellation_token,
            }
        )
        answer = self.chat_completions[self._current_index]
        self._current_index += 1
        completion_tokens = (
            len(answer.split()) if isinstance(answer, str) else answer.usage.completion_tokens
        )
        usage = RequestUsage(
            prompt_tokens=self.count_tokens(messages), completion_tokens=completion_tokens
        )
        self._cur_usage = usage
        self._total_usage = added_usage(self._total_usage, usage)
        return answer, usage

    def _result(self, answer: str, usage: RequestUsage) -> CreateResult:
        return CreateResult(
            finish_reason="stop", content=answer, usage=usage, cached=self._cached_bool_value
        )

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Any] = _NO_TOOLS,
        tool_choice: Any | ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = _NO_EXTRA_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        """The next answer."""
        answer, usage = self._next(
            messages, tools, tool_choice, json_output, extra_create_args, cancellation_token
        )
        return self._result(answer, usage) if isinstance(answer, str) else answer

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Any] = _NO_TOOLS,
        tool_choice: Any | ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = _NO_EXTRA_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """The next answer, word by word when it is a string, then as a CreateResult."""
        answer, usage = self._next(
            messages, tools, tool_choice, json_output, extra_create_args, cancellation_token
        )
        if isinstance(answer, CreateResult):
            yield answer
            return
        words = answer.split()
        for index, word in enumerate(words):
            yield word if index == len(words) - 1 else word + " "
        yield self._result(answer, usage)

    async def close(self) -> None:
        pass

    def actual_usage(self) -> RequestUsage:
        """The usage of the last call."""
        return self._cur_usage

    def total_usage(self) -> RequestUsage:
        return self._total_usage

    def count_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = _NO_TOOLS
    ) -> int:
        """The words of the messages' text content (other content counts nothing)."""
        count = 0
        for message in messages:
            if isinstance(message.content, str):
                count += len(message.content.split())
            else:
                logger.warning("Token count has been done only on string content")
        return count

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = _NO_TOOLS
    ) -> int:
        """10000 less the tokens used so far (never below 0)."""
        used = self._total_usage.prompt_tokens + self._total_usage.completion_tokens
        return max(0, self._total_available_tokens - used)

    def set_cached_bool_value(self, value: bool) -> None:
        """The ``cached`` flag of the CreateResults made from string answers (``True`` at first)."""
        self._cached_bool_value = value

    def reset(self) -> None:
        """Start again from the first answer, with no usage."""
        self._cur_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._current_index = 0

    def _to_config(self) -> ReplayChatCompletionClientConfig:
        return ReplayChatCompletionClientConfig(
            chat_completions=self.chat_completions, model_info=dict(self._model_info)
        )

    @classmethod
    def _from_config(cls, config: ReplayChatCompletionClientConfig) -> Self:
        return cls(
            chat_completions=config.chat_completions,
            model_info=cast(ModelInfo | None, config.model_info),
        )

"""The chat completions client both OpenAI clients share: requests, answers, streams, usage."""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import AsyncGenerator, Awaitable, Mapping, Sequence
from typing import Any, TypeVar, cast

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk, completion_create_params
from pydantic import BaseModel

from ...._constants import EVENT_LOGGER_NAME
from ....base import CancellationToken
from .._image import Image
from .._model_client import _NO_EXTRA_ARGS, _NO_TOOLS, FixedModelInfoClient, ToolChoice
from .._model_info import (
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    model_info_of_capabilities,
    validate_model_info,
)
from .._types import CreateResult, LLMMessage, RequestUsage, UserMessage, added_usage
from . import _model_table, _tokens
from ._request import (
    json_schema_response_format,
    merge_system_messages,
    to_openai_messages,
    to_openai_tool_choice,
    to_openai_tools,
)
from ._response import StreamAccumulator, result_of_completion

event_logger = logging.getLogger(EVENT_LOGGER_NAME)
T = TypeVar("T")

# What extra_create_args may hold: the API's request fields and the client's per-request options.
CREATE_ARGS = frozenset(completion_create_params.CompletionCreateParamsBase.__annotations__) | {
    "timeout",
    "extra_headers",
    "extra_query",
    "extra_body",
}
# Set by the client itself (one choice per request; tools, not the deprecated functions).
DISALLOWED_CREATE_ARGS = frozenset({"stream", "messages", "function_call", "functions", "n"})


def check_create_args(create_args: Mapping[str, Any]) -> None:
    """Raises ValueError for a request argument the API does not have or the client sets."""
    disallowed = set(create_args) & DISALLOWED_CREATE_ARGS
    if disallowed:
        raise ValueError(f"Disallowed create args are present: {sorted(disallowed)}")
    unknown = set(create_args) - CREATE_ARGS
    if unknown:
        raise ValueError(f"Extra create args are invalid: {sorted(unknown)}")


async def cancellable(awaitable: Awaitable[T], token: CancellationToken | None) -> T:
    """Await ``awaitable`` as a task that ``token`` cancels (closing its HTTP request)."""
    task = asyncio.ensure_future(awaitable)
    if token is None:
        return await task

    def cancel() -> None:
        task.cancel()

    token.add_callback(cancel)
    try:
        return await task
    finally:
        token.remove_callback(cancel)


class BaseOpenAIChatCompletionClient(FixedModelInfoClient):
    """A ChatCompletionClient on an ``openai`` client: OpenAI, Azure OpenAI or any server that
    speaks the chat completions API. Use :class:`OpenAIChatCompletionClient` or
    :class:`AzureOpenAIChatCompletionClient`; this base takes a ready ``AsyncOpenAI``.

    Errors are the ``openai`` package's own (``openai.RateLimitError``,
    ``openai.InternalServerError``, ``openai.APIConnectionError``, ...), raised once the client's
    ``max_retries`` are spent, as autogen-ext raises them.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        create_args: dict[str, Any],
        model_capabilities: ModelCapabilities | None = None,
        model_info: ModelInfo | None = None,
        add_name_prefixes: bool = False,
        include_name_in_message: bool = True,
    ) -> None:
        if "model" not in create_args:
            raise ValueError("Required create args are missing: {'model'}")
        check_create_args(create_args)
        model = str(create_args["model"])
        if model_capabilities is not None and model_info is not None:
            raise ValueError("model_capabilities and model_info are mutually exclusive")
        if model_capabilities is not None:
            warnings.warn(
                "model_capabilities is deprecated, use model_info instead",
                DeprecationWarning,
                stacklevel=2,
            )
            model_info = model_info_of_capabilities(model_capabilities)
        if model_info is None:
            model_info = _model_table.known_model_info(model)
            if model_info is None:
                raise ValueError(
                    f"model_info is required when model name is not a valid OpenAI model "
                    f"({model!r}): pass model_info=ModelInfo(...) with what it supports"
                )
        validate_model_info(model_info)
        response_format = create_args.get("response_format")
        if (
            not model_info["json_output"]
            and isinstance(response_format, dict)
            and response_format.get("type") == "json_object"
        ):
            raise ValueError("Model does not support JSON output.")
        self._client = client
        self._create_args = create_args
        self._model_info = model_info
        self._add_name_prefixes = add_name_prefixes
        self._include_name_in_message = include_name_in_message
        self._total_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._actual_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)

    def _request(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Any],
        tool_choice: Any,
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for one request."""
        check_create_args(extra_create_args)
        request = {**self._create_args, **extra_create_args}
        info = self._model_info
        legacy_format = request.get("response_format")
        if isinstance(legacy_format, type) and issubclass(legacy_format, BaseModel):
            warnings.warn(
                "Using response_format to specify the BaseModel for structured output type will "
                "be deprecated. Use json_output in create and create_stream instead.",
                DeprecationWarning,
                stacklevel=3,
            )
            if isinstance(json_output, type):
                raise ValueError(
                    "response_format and json_output cannot be set to a Pydantic model class "
                    "at the same time."
                )
            del request["response_format"]
            json_output = legacy_format
        if json_output is True:
            if not info["json_output"]:
                raise ValueError("Model does not support JSON output.")
            request["response_format"] = {"type": "json_object"}
        elif json_output is False:
            request["response_format"] = {"type": "text"}
        elif isinstance(json_output, type) and issubclass(json_output, BaseModel):
            if not info["structured_output"]:
                raise ValueError("Model does not support structured output.")
            if "response_format" in request:
                warnings.warn(
                    "response_format is found in extra_create_args while json_output is set to a "
                    "Pydantic model class. Skipping the response_format in extra_create_args in "
                    "favor of the json_output. Structured output will be used.",
                    UserWarning,
                    stacklevel=3,
                )
            request["response_format"] = json_schema_response_format(json_output)
        elif json_output is not None:
            raise ValueError(
                f"json_output must be a boolean or a Pydantic model class, got {type(json_output)}"
            )
        if not info["vision"] and any(
            isinstance(message, UserMessage)
            and not isinstance(message.content, str)
            and any(isinstance(part, Image) for part in message.content)
            for message in messages
        ):
            raise ValueError("Model does not support vision and image was provided")
        if not info.get("multiple_system_messages", False):
            messages = merge_system_messages(messages)
        request["messages"] = [
            param
            for message in messages
            for param in to_openai_messages(
                message,
                add_name_prefixes=self._add_name_prefixes,
                include_name=self._include_name_in_message,
            )
        ]
        if tools:
            if not info["function_calling"]:
                raise ValueError("Model does not support function calling")
            request["tools"] = to_openai_tools(tools)
            request["tool_choice"] = to_openai_tool_choice(tool_choice, tools)
        elif tool_choice not in ("auto", "required", "none"):
            to_openai_tool_choice(tool_choice, tools)  # raises: a tool named, none given
        return request

    def _parse_think(self) -> bool:
        return self._model_info["family"] == ModelFamily.R1

    def _account(self, request: Mapping[str, Any], result: CreateResult) -> None:
        self._total_usage = added_usage(self._total_usage, result.usage)
        self._actual_usage = added_usage(self._actual_usage, result.usage)
        if event_logger.isEnabledFor(logging.INFO):
            event = {
                "type": "LLMCall",
                "messages": request["messages"],
                "response": result.model_dump(mode="json"),
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
            }
            event_logger.info(json.dumps(event, default=str))

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
        """One completion; ``cancellation_token`` cancels it, closing its HTTP request."""
        request = self._request(messages, tools, tool_choice, json_output, extra_create_args)
        completion: ChatCompletion = await cancellable(
            self._client.chat.completions.create(**request, stream=False), cancellation_token
        )
        result = result_of_completion(completion, parse_think=self._parse_think())
        self._account(request, result)
        return result

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Any] = _NO_TOOLS,
        tool_choice: Any | ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = _NO_EXTRA_ARGS,
        cancellation_token: CancellationToken | None = None,
        include_usage: bool | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """The completion as its text chunks, then its :class:`CreateResult`.

        Tool calls arrive in pieces and are put together; they are in the CreateResult only.
        Servers report usage in a stream only when asked: ``include_usage=True`` (or
        ``extra_create_args={"stream_options": {"include_usage": True}}``) asks for it, and
        without it the result's usage is zero, as in autogen-ext. Stopping the iteration early,
        or cancelling the token, closes the HTTP response.
        """
        request = self._request(messages, tools, tool_choice, json_output, extra_create_args)
        if include_usage is not None:
            options = dict(request.get("stream_options") or {})
            request["stream_options"] = {**options, "include_usage": include_usage}
        stream = await cancellable(
            self._client.chat.completions.create(**request, stream=True), cancellation_token
        )
        accumulator = StreamAccumulator(parse_think=self._parse_think())
        try:
            while True:
                try:
                    chunk = await cancellable(
                        cast(Awaitable[ChatCompletionChunk], anext(stream)), cancellation_token
                    )
                except StopAsyncIteration:
                    break
                text = accumulator.add(chunk)
                if text:
                    yield text
        finally:
            await stream.close()
        result = accumulator.result()
        self._account(request, result)
        yield result

    async def close(self) -> None:
        await self._client.close()

    def actual_usage(self) -> RequestUsage:
        return self._actual_usage

    def total_usage(self) -> RequestUsage:
        return self._total_usage

    def count_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = _NO_TOOLS
    ) -> int:
        """An estimate of the prompt's tokens (see ``_tokens``: no tokenizer is downloaded)."""
        return _tokens.count_tokens(
            messages,
            tools,
            add_name_prefixes=self._add_name_prefixes,
            include_name=self._include_name_in_message,
        )

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = _NO_TOOLS
    ) -> int:
        """The model's context window less :meth:`count_tokens`.

        Raises:
            ValueError: the model is not one whose context window the client knows.
        """
        model = str(self._create_args["model"])
        limit = _model_table.token_limit(model)
        if limit is None:
            raise ValueError(f"The context window of model {model!r} is not known.")
        return limit - self.count_tokens(messages, tools=tools)

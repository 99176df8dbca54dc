"""What the chat completions API answers, as a CreateResult: finish reasons, tool calls, usage,
thoughts and log probabilities, from one completion or from the chunks of a stream."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ...._constants import TRACE_LOGGER_NAME
from .._function_call import FunctionCall
from .._types import (
    ChatCompletionTokenLogprob,
    CreateResult,
    FinishReasons,
    RequestUsage,
    TopLogprob,
)
from ._request import normalize_name

trace_logger = logging.getLogger(TRACE_LOGGER_NAME)

_FINISH_REASONS: dict[str, FinishReasons] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "function_calls": "function_calls",
    "tool_calls": "function_calls",
    "end_turn": "stop",
}
_THINK = re.compile(r"\s*<think>(?P<thought>.*?)</think>(?P<content>.*)", re.DOTALL)


def normalize_finish_reason(reason: str | None) -> FinishReasons:
    """A server's finish reason as one of ours (``"unknown"`` for what we do not know)."""
    return "unknown" if reason is None else _FINISH_REASONS.get(reason.lower(), "unknown")


def split_thought(content: str) -> tuple[str | None, str]:
    """``<think>...</think>`` at the start of a reasoning model's text, apart from the answer."""
    match = _THINK.fullmatch(content)
    if match is None:
        return None, content
    return match["thought"].strip(), match["content"].strip()


def _arguments_text(arguments: Any) -> str:
    # some servers send the arguments as a JSON object instead of its text
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _logprobs(content: list[Any] | None) -> list[ChatCompletionTokenLogprob] | None:
    if not content:
        return None
    return [
        ChatCompletionTokenLogprob(
            token=entry.token,
            logprob=entry.logprob,
            top_logprobs=[
                TopLogprob(logprob=top.logprob, bytes=top.bytes) for top in entry.top_logprobs or ()
            ],
            bytes=entry.bytes,
        )
        for entry in content
    ]


def _reasoning_of(extra: dict[str, Any] | None) -> str | None:
    # vLLM's and DeepSeek's reasoning parsers (and Ollama's compatible API) send it apart
    for key in ("reasoning_content", "reasoning"):
        value = (extra or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _finish(
    *,
    reason: str | None,
    text: str,
    calls: list[FunctionCall],
    reasoning: str | None,
    usage: RequestUsage,
    logprobs: list[ChatCompletionTokenLogprob] | None,
    parse_think: bool,
) -> CreateResult:
    thought = reasoning
    content: str | list[FunctionCall]
    if calls:
        if reason not in ("tool_calls", "function_calls"):
            # Ollama and others say "stop" with tool calls: the calls are what counts
            trace_logger.debug("finish reason %r with tool calls: reported as tool calls", reason)
        reason = "tool_calls"
        content = calls
        thought = thought or text or None
    else:
        content = text
        if parse_think:
            parsed, content = split_thought(text)
            thought = thought or parsed
    return CreateResult(
        finish_reason=normalize_finish_reason(reason),
        content=content,
        usage=usage,
        cached=False,
        logprobs=logprobs,
        thought=thought,
    )


def result_of_completion(completion: ChatCompletion, *, parse_think: bool) -> CreateResult:
    """The CreateResult of a completion (its first choice: we ask for one).

    Raises:
        ValueError: the model answered with the deprecated ``function_call``, or no choice.
    """
    if not completion.choices:
        raise ValueError("The model's answer has no choices.")
    choice = completion.choices[0]
    message = choice.message
    if message.function_call is not None:
        raise ValueError("function_call is deprecated and is not supported by this model client.")
    calls = [
        FunctionCall(
            id=call.id,
            arguments=_arguments_text(call.function.arguments),
            name=normalize_name(call.function.name),
        )
        for call in message.tool_calls or ()
        if call.type == "function"
    ]
    usage = completion.usage
    return _finish(
        reason=choice.finish_reason,
        text=message.content or "",
        calls=calls,
        reasoning=_reasoning_of(message.model_extra),
        usage=RequestUsage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        ),
        logprobs=_logprobs(choice.logprobs.content if choice.logprobs else None),
        parse_think=parse_think,
    )


class StreamAccumulator:
    """Collects a stream's chunks: :meth:`add` returns the text to yield, :meth:`result` the end."""

    def __init__(self, *, parse_think: bool) -> None:
        self._parse_think = parse_think
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, FunctionCall] = {}
        self._reason: str | None = None
        self._usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._logprobs: list[ChatCompletionTokenLogprob] = []

    def add(self, chunk: ChatCompletionChunk) -> str | None:
        if chunk.usage is not None:
            # the usage chunk (with include_usage) has no choices on OpenAI, some on others
            self._usage = RequestUsage(
                prompt_tokens=chunk.usage.prompt_tokens,
                completion_tokens=chunk.usage.completion_tokens,
            )
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            self._reason = choice.finish_reason
        if choice.logprobs is not None:
            self._logprobs.extend(_logprobs(choice.logprobs.content) or ())
        delta = choice.delta
        reasoning = _reasoning_of(delta.model_extra)
        if reasoning:
            self._reasoning.append(reasoning)
        for part in delta.tool_calls or ():
            call = self._calls.setdefault(part.index, FunctionCall(id="", arguments="", name=""))
            if part.id:
                call.id += part.id
            if part.function is not None:
                call.name += part.function.name or ""
                call.arguments += _arguments_text(part.function.arguments or "")
        if delta.content:
            self._text.append(delta.content)
            return delta.content
        return None

    def result(self) -> CreateResult:
        calls = list(self._calls.values())
        for call in calls:
            call.name = normalize_name(call.name)
        return _finish(
            reason=self._reason,
            text="".join(self._text),
            calls=calls,
            reasoning="".join(self._reasoning) or None,
            usage=self._usage,
            logprobs=self._logprobs or None,
            parse_think=self._parse_think,
        )

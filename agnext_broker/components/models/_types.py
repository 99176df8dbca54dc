"""The messages a model reads (the ``LLMMessage`` family) and what a completion returns.

Field names and ``type`` discriminators are autogen-core's, so JSON written by one parses in the
other. Every class here is in the wire-type catalog: a runtime decodes it by its class name
(its wire name, as in autogen-core) without being told about it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ...base._serialization import remember_message_class
from ._function_call import FunctionCall
from ._image import Image


class SystemMessage(BaseModel):
    """Instructions for the model from the developer (OpenAI's "developer" role)."""

    content: str
    type: Literal["SystemMessage"] = "SystemMessage"


class UserMessage(BaseModel):
    """Input from an end user, or any data given to the model; may hold images."""

    content: str | list[str | Image]
    source: str
    """The name of the agent that sent this message."""
    type: Literal["UserMessage"] = "UserMessage"


class AssistantMessage(BaseModel):
    """A message sampled from the model: text, or the function calls it asked for."""

    content: str | list[FunctionCall]
    thought: str | None = None
    """The reasoning text of a reasoning model, or text that came with function calls."""
    source: str
    """The name of the agent that sent this message."""
    type: Literal["AssistantMessage"] = "AssistantMessage"


class FunctionExecutionResult(BaseModel):
    """The output of one function call."""

    content: str
    name: str
    """The name of the function that was called."""
    call_id: str
    """The id of the :class:`FunctionCall` (empty for some models)."""
    is_error: bool | None = None


class FunctionExecutionResultMessage(BaseModel):
    """The outputs of the function calls of one :class:`AssistantMessage`."""

    content: list[FunctionExecutionResult]
    type: Literal["FunctionExecutionResultMessage"] = "FunctionExecutionResultMessage"


LLMMessage = Annotated[
    SystemMessage | UserMessage | AssistantMessage | FunctionExecutionResultMessage,
    Field(discriminator="type"),
]
"""Any message of a conversation with a model, told apart by its ``type`` field."""


@dataclass
class RequestUsage:
    prompt_tokens: int
    completion_tokens: int


def added_usage(usage: RequestUsage, more: RequestUsage) -> RequestUsage:
    """The tokens of ``usage`` and ``more`` together."""
    return RequestUsage(
        prompt_tokens=usage.prompt_tokens + more.prompt_tokens,
        completion_tokens=usage.completion_tokens + more.completion_tokens,
    )


FinishReasons = Literal["stop", "length", "function_calls", "content_filter", "unknown"]


@dataclass
class TopLogprob:
    logprob: float
    bytes: list[int] | None = None


class ChatCompletionTokenLogprob(BaseModel):
    token: str
    logprob: float
    top_logprobs: list[TopLogprob] | None = None
    bytes: list[int] | None = None


class CreateResult(BaseModel):
    """The output of one model completion."""

    finish_reason: FinishReasons
    content: str | list[FunctionCall]
    usage: RequestUsage
    cached: bool
    """Whether the completion came from a cache."""
    logprobs: list[ChatCompletionTokenLogprob] | None = None
    thought: str | None = None
    """The reasoning text of a reasoning model, or text that came with function calls."""


for _wire_type in (
    FunctionCall,
    SystemMessage,
    UserMessage,
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    RequestUsage,
    CreateResult,
):
    remember_message_class(_wire_type)

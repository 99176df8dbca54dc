"""tool_agent_caller_loop: ask the model, run its tool calls on a tool agent, until it answers."""

from __future__ import annotations

import asyncio
import sys

from ...base import AgentId, AgentRuntime, BaseAgent, CancellationToken, RemoteHandlerError
from ..models._function_call import FunctionCall
from ..models._model_client import ChatCompletionClient
from ..models._types import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
)
from ..tools._base import Tool, ToolSchema
from ._tool_agent import ToolException


async def tool_agent_caller_loop(
    caller: BaseAgent | AgentRuntime,
    tool_agent_id: AgentId,
    model_client: ChatCompletionClient,
    input_messages: list[LLMMessage],
    tool_schema: list[ToolSchema] | list[Tool],
    cancellation_token: CancellationToken | None = None,
    caller_source: str = "assistant",
) -> list[LLMMessage]:
    """Ask ``model_client``; while it answers with function calls, send each call to the tool
    agent (in parallel, by RPC from ``caller``) and ask again with the results.

    A :class:`ToolException` of the tool agent becomes an error result the model reads, also
    when the tool agent runs on another worker; any other exception is raised.

    Args:
        caller: the agent (or runtime) the calls are sent from.
        tool_agent_id: the :class:`ToolAgent` that runs the tools.
        model_client: the model.
        input_messages: the conversation so far.
        tool_schema: the tools the model may call.
        cancellation_token: cancels the model requests and the tool calls.
        caller_source: the ``source`` of the :class:`AssistantMessage` s made here.

    Returns:
        The messages this loop added: the model's answers and the tools' results, ending with
        the model's text answer.
    """
    generated: list[LLMMessage] = []
    response = await model_client.create(
        input_messages, tools=tool_schema, cancellation_token=cancellation_token
    )
    generated.append(_assistant_message(response, caller_source))
    while isinstance(response.content, list) and all(
        isinstance(item, FunctionCall) for item in response.content
    ):
        calls = response.content
        results = await asyncio.gather(
            *(
                caller.send_message(call, tool_agent_id, cancellation_token=cancellation_token)
                for call in calls
            ),
            return_exceptions=True,
        )
        generated.append(
            FunctionExecutionResultMessage(
                content=[
                    _function_result(call, result)
                    for call, result in zip(calls, results, strict=True)
                ]
            )
        )
        response = await model_client.create(
            input_messages + generated, tools=tool_schema, cancellation_token=cancellation_token
        )
        generated.append(_assistant_message(response, caller_source))
    return generated


def _assistant_message(response: CreateResult, source: str) -> AssistantMessage:
    return AssistantMessage(content=response.content, thought=response.thought, source=source)


def _function_result(call: FunctionCall, result: object) -> FunctionExecutionResult:
    if isinstance(result, FunctionExecutionResult):
        return result
    if isinstance(result, ToolException):
        return FunctionExecutionResult(
            content=result.content, call_id=result.call_id, is_error=True, name=result.name
        )
    if isinstance(result, RemoteHandlerError) and _is_tool_exception(result.error_type):
        # The tool agent's worker sent back the exception's type and content, not its fields:
        # the call it answers gives the id and the name.
        content = str(result).removeprefix(f"{result.error_type}: ")
        return FunctionExecutionResult(
            content=content, call_id=call.id, is_error=True, name=call.name
        )
    if isinstance(result, BaseException):
        raise result
    raise TypeError(f"The tool agent answered {type(result).__name__}, not a function result.")


def _is_tool_exception(error_type: str) -> bool:
    """Whether ``module:QualName`` names a :class:`ToolException` class loaded here."""
    module_name, _, qualname = error_type.rpartition(":")
    target: object = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return isinstance(target, type) and issubclass(target, ToolException)

"""ToolAgent: an agent that runs the tool a FunctionCall names and answers with its result."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...base import MessageContext
from .._routed_agent import RoutedAgent, message_handler
from ..models._function_call import FunctionCall
from ..models._types import FunctionExecutionResult
from ..tools._base import Tool


# An Exception, where autogen-core's is a BaseException: runtimes (ours, and autogen-core's
# own) treat a BaseException that is not an Exception as fatal, and the broker runtime carries
# a handler's Exception back to the caller of another worker.
@dataclass(eq=False)
class ToolException(Exception):
    """A tool call that failed; ``content`` says how, for the model."""

    call_id: str
    content: str
    name: str

    def __post_init__(self) -> None:
        super().__init__(self.content)  # str() and the message sent back are the content


@dataclass(eq=False)
class ToolNotFoundException(ToolException):
    """The call names a tool the agent does not have."""


@dataclass(eq=False)
class InvalidToolArgumentsException(ToolException):
    """The call's arguments are not JSON."""


@dataclass(eq=False)
class ToolExecutionException(ToolException):
    """The tool raised (invalid arguments for its schema included)."""


class ToolAgent(RoutedAgent):
    """Runs the tool a :class:`FunctionCall` (sent to it directly) names, with the call's JSON
    arguments, and answers a :class:`FunctionExecutionResult` with the tool's result as text.

    A failure is raised to the caller, as a :class:`ToolException` that carries the call's id
    and tool name; :func:`tool_agent_caller_loop` turns it into an error result for the model.

    Args:
        description: the agent's description.
        tools: the tools it can run.
    """

    def __init__(self, description: str, tools: list[Tool]) -> None:
        super().__init__(description)
        self._tools = tools

    @property
    def tools(self) -> list[Tool]:
        return self._tools

    @message_handler
    async def handle_function_call(
        self, message: FunctionCall, ctx: MessageContext
    ) -> FunctionExecutionResult:
        """Run the tool ``message`` names.

        Raises:
            ToolNotFoundException: no tool of that name.
            InvalidToolArgumentsException: the arguments are not JSON.
            ToolExecutionException: the tool raised.
        """
        tool = next((tool for tool in self._tools if tool.name == message.name), None)
        if tool is None:
            raise ToolNotFoundException(
                call_id=message.id,
                content=f"Error: Tool not found: {message.name}",
                name=message.name,
            )
        try:
            arguments = json.loads(message.arguments)
            result = await tool.run_json(
                args=arguments, cancellation_token=ctx.cancellation_token, call_id=message.id
            )
            result_as_str = tool.return_value_as_string(result)
        except json.JSONDecodeError as e:
            raise InvalidToolArgumentsException(
                call_id=message.id,
                content=f"Error: Invalid arguments: {message.arguments}",
                name=message.name,
            ) from e
        except Exception as e:
            raise ToolExecutionException(
                call_id=message.id, content=f"Error: {e}", name=message.name
            ) from e
        return FunctionExecutionResult(
            content=result_as_str, call_id=message.id, is_error=False, name=message.name
        )

"""The tool agent and its caller loop (autogen-core's ``autogen_core.tool_agent``)."""

from ..components.tool_agent._caller_loop import tool_agent_caller_loop
from ..components.tool_agent._tool_agent import (
    InvalidToolArgumentsException,
    ToolAgent,
    ToolException,
    ToolExecutionException,
    ToolNotFoundException,
)

__all__ = [
    "InvalidToolArgumentsException",
    "ToolAgent",
    "ToolException",
    "ToolExecutionException",
    "ToolNotFoundException",
    "tool_agent_caller_loop",
]

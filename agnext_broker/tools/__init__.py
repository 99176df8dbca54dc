"""Tools a model can call (autogen-core's ``autogen_core.tools``)."""

from ..components.tools._base import (
    BaseTool,
    BaseToolWithState,
    ParametersSchema,
    Tool,
    ToolOverride,
    ToolSchema,
)
from ..components.tools._function_tool import FunctionTool
from ..components.tools._static_workbench import StaticWorkbench
from ..components.tools._workbench import (
    ImageResultContent,
    ResultContent,
    TextResultContent,
    ToolResult,
    Workbench,
)

__all__ = [
    "BaseTool",
    "BaseToolWithState",
    "FunctionTool",
    "ImageResultContent",
    "ParametersSchema",
    "ResultContent",
    "StaticWorkbench",
    "TextResultContent",
    "Tool",
    "ToolOverride",
    "ToolResult",
    "ToolSchema",
    "Workbench",
]

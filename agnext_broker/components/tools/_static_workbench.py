"""StaticWorkbench: a fixed list of tools, optionally shown under other names."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, Field

from ...base import CancellationToken
from .._component_config import Component, ComponentModel
from ..models._image import Image
from ._base import BaseTool, ToolOverride, ToolSchema
from ._workbench import ImageResultContent, ResultContent, TextResultContent, ToolResult, Workbench


class StaticWorkbenchConfig(BaseModel):
    tools: list[ComponentModel] = []
    tool_overrides: dict[str, ToolOverride] = Field(default_factory=dict)


class StaticWorkbenchState(BaseModel):
    type: Literal["StaticWorkbenchState"] = "StaticWorkbenchState"
    tools: dict[str, Mapping[str, Any]] = {}


class StaticWorkbench(Workbench, Component[StaticWorkbenchConfig]):
    """A workbench whose tools do not change.

    A tool that raises gives a :class:`ToolResult` with ``is_error`` and the error's message; a
    tool that returns an :class:`Image` (or a list of strings and images) gives image parts,
    anything else the text of :meth:`~BaseTool.return_value_as_string`.

    Args:
        tools: the tools.
        tool_overrides: for an original tool name, the name and/or description to list it
            under; :meth:`call_tool` takes the new name. A new name may not be another tool's.
    """

    component_provider_override = "agnext_broker.tools.StaticWorkbench"
    component_config_schema = StaticWorkbenchConfig

    def __init__(
        self,
        tools: list[BaseTool[Any, Any]],
        tool_overrides: dict[str, ToolOverride] | None = None,
    ) -> None:
        self._tools = tools
        self._tool_overrides = dict(tool_overrides or {})
        self._original_names: dict[str, str] = {}
        names = {tool.name for tool in tools}
        for original, override in self._tool_overrides.items():
            if not override.name:
                continue
            if override.name in names and override.name != original:
                raise ValueError(
                    f"Tool override name '{override.name}' conflicts with existing tool name. "
                    "Override names must not conflict with any tool names."
                )
            if override.name in self._original_names:
                raise ValueError(
                    f"Tool override name '{override.name}' is used by multiple tools: "
                    f"'{self._original_names[override.name]}' and '{original}'. Override names "
                    "must be unique."
                )
            self._original_names[override.name] = original

    async def list_tools(self) -> list[ToolSchema]:
        schemas: list[ToolSchema] = []
        for tool in self._tools:
            schema = tool.schema
            override = self._tool_overrides.get(tool.name)
            if override is not None:
                schema = ToolSchema(**schema)  # a copy: the tool's own schema stays as it is
                if override.name is not None:
                    schema["name"] = override.name
                if override.description is not None:
                    schema["description"] = override.description
            schemas.append(schema)
        return schemas

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        cancellation_token: CancellationToken | None = None,
        call_id: str | None = None,
    ) -> ToolResult:
        original = self._original_names.get(name, name)
        tool = next((tool for tool in self._tools if tool.name == original), None)
        if tool is None:
            return ToolResult(
                name=name,
                result=[TextResultContent(content=f"Tool {name} not found.")],
                is_error=True,
            )
        token = cancellation_token or CancellationToken()
        try:
            running = asyncio.ensure_future(tool.run_json(arguments or {}, token, call_id=call_id))
            token.link_future(running)
            value = await running
        except Exception as e:
            return ToolResult(
                name=name, result=[TextResultContent(content=_format_errors(e))], is_error=True
            )
        return ToolResult(name=name, result=_result_contents(tool, value))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def reset(self) -> None:
        return None

    async def save_state(self) -> Mapping[str, Any]:
        state = StaticWorkbenchState()
        for tool in self._tools:
            state.tools[tool.name] = await tool.save_state_json()
        return state.model_dump(mode="json")

    async def load_state(self, state: Mapping[str, Any]) -> None:
        parsed = StaticWorkbenchState.model_validate(state)
        for tool in self._tools:
            if tool.name in parsed.tools:
                await tool.load_state_json(parsed.tools[tool.name])

    def _to_config(self) -> StaticWorkbenchConfig:
        return StaticWorkbenchConfig(
            tools=[tool.dump_component() for tool in self._tools],
            tool_overrides=self._tool_overrides,
        )

    @classmethod
    def _from_config(cls, config: StaticWorkbenchConfig) -> Self:
        tools: list[BaseTool[Any, Any]] = [BaseTool.load_component(tool) for tool in config.tools]
        return cls(tools=tools, tool_overrides=config.tool_overrides)


def _result_contents(tool: BaseTool[Any, Any], value: Any) -> list[ResultContent]:
    if isinstance(value, Image):
        return [ImageResultContent(content=value)]
    if isinstance(value, list) and any(isinstance(item, Image) for item in value):
        return [
            ImageResultContent(content=item)
            if isinstance(item, Image)
            else TextResultContent(content=tool.return_value_as_string(item))
            for item in value
        ]
    return [TextResultContent(content=tool.return_value_as_string(value))]


def _format_errors(error: BaseException) -> str:
    """The error's message; each message of an exception group, one per line."""
    if isinstance(error, BaseExceptionGroup):
        return "\n".join(_format_errors(inner) for inner in error.exceptions)
    return str(error).strip()

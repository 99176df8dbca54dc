"""Workbench: a set of tools behind one interface, and what calling one of them returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field

from ...base import CancellationToken
from .._component_config import ComponentBase
from ..models._image import Image
from ._base import ToolSchema


class TextResultContent(BaseModel):
    """Text a tool returned."""

    type: Literal["TextResultContent"] = "TextResultContent"
    content: str


class ImageResultContent(BaseModel):
    """An image a tool returned."""

    type: Literal["ImageResultContent"] = "ImageResultContent"
    content: Image


ResultContent = Annotated[TextResultContent | ImageResultContent, Field(discriminator="type")]


class ToolResult(BaseModel):
    """The result of one tool call made through a workbench."""

    type: Literal["ToolResult"] = "ToolResult"
    name: str
    """The name the tool was called by."""
    result: list[ResultContent]
    is_error: bool = False
    """Whether the tool raised (``result`` then holds the error's text)."""

    def to_text(self, replace_image: str | None = None) -> str:
        """The result as text, one line per part; an image as ``replace_image``, or else as
        ``[Image: <base64>]``."""
        parts: list[str] = []
        for content in self.result:
            if isinstance(content, TextResultContent):
                parts.append(content.content)
            elif replace_image is not None:
                parts.append(replace_image)
            else:
                parts.append(f"[Image: {content.content.to_base64()}]")
        return "\n".join(parts)


class Workbench(ABC, ComponentBase[BaseModel]):
    """Tools that may share resources and state, listed and called through one interface.

    What it lists may change after a call. Use it as an async context manager: entering calls
    :meth:`start`, leaving calls :meth:`stop`.
    """

    component_type = "workbench"

    @abstractmethod
    async def list_tools(self) -> list[ToolSchema]:
        """The schemas of the tools available now."""

    @abstractmethod
    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        cancellation_token: CancellationToken | None = None,
        call_id: str | None = None,
    ) -> ToolResult:
        """Call the tool ``name`` with ``arguments`` (none: no arguments).

        A tool that raises gives a result with ``is_error`` set, not an exception.
        """

    @abstractmethod
    async def start(self) -> None:
        """Acquire the workbench's resources; call it before using the workbench."""

    @abstractmethod
    async def stop(self) -> None:
        """Release the workbench's resources."""

    @abstractmethod
    async def reset(self) -> None:
        """Return to the state just after :meth:`start`."""

    @abstractmethod
    async def save_state(self) -> Mapping[str, Any]:
        """The state of the workbench and its tools, as JSON."""

    @abstractmethod
    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`save_state` returned."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.stop()

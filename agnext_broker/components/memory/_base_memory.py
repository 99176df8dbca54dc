"""The memory interface and the items it stores, as autogen-core defines them."""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_serializer, model_validator

from ...base import CancellationToken
from .._component_config import ComponentBase, ComponentType
from ..model_context._chat_completion_context import ChatCompletionContext
from ..models._image import Image


class MemoryMimeType(Enum):
    """The kinds of memory content."""

    TEXT = "text/plain"
    JSON = "application/json"
    MARKDOWN = "text/markdown"
    IMAGE = "image/*"
    BINARY = "application/octet-stream"


ContentType = str | bytes | dict[str, Any] | Image


class MemoryContent(BaseModel):
    """One item of memory.

    It survives JSON, binary content and images included: bytes are written as base64 and an
    image as ``{"data": "<base64>"}``, and the ``mime_type`` tells them apart from text and
    dicts when they are read back.
    """

    model_config = ConfigDict(ser_json_bytes="base64")

    content: ContentType
    mime_type: MemoryMimeType | str
    metadata: dict[str, Any] | None = None

    @field_serializer("mime_type")
    def _serialize_mime_type(self, mime_type: MemoryMimeType | str) -> str:
        return mime_type.value if isinstance(mime_type, MemoryMimeType) else mime_type

    @model_validator(mode="after")
    def _restore_binary_content(self) -> MemoryContent:
        mime_type = self.mime_type_value
        if mime_type == MemoryMimeType.BINARY.value and isinstance(self.content, str):
            self.content = base64.b64decode(self.content)
        elif (
            mime_type.startswith("image/")
            and isinstance(self.content, dict)
            and set(self.content) == {"data"}
        ):
            self.content = Image.from_base64(self.content["data"])
        return self

    @property
    def mime_type_value(self) -> str:
        """The MIME type as a string, whether it was given as a :class:`MemoryMimeType` or not."""
        return self._serialize_mime_type(self.mime_type)


class MemoryQueryResult(BaseModel):
    """What :meth:`Memory.query` found."""

    results: list[MemoryContent]


class UpdateContextResult(BaseModel):
    """The memories :meth:`Memory.update_context` put into a model context."""

    memories: MemoryQueryResult


class Memory(ABC, ComponentBase[BaseModel]):
    """Stores data that enriches a model context, and puts what is relevant into one.

    The storage and the retrieval (a list, a database, vector search, ...) are up to the
    implementation; see :class:`ListMemory`.
    """

    component_type: ClassVar[ComponentType] = "memory"

    @abstractmethod
    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Add the memories relevant to ``model_context`` to it."""

    @abstractmethod
    async def query(
        self,
        query: str | MemoryContent,
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """The entries relevant to ``query``."""

    @abstractmethod
    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        """Store a new entry."""

    @abstractmethod
    async def clear(self) -> None:
        """Remove every entry."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the memory holds (connections, files)."""

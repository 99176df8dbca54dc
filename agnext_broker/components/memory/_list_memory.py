from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, Field

from ...base import CancellationToken
from .._component_config import Component
from ..model_context._chat_completion_context import ChatCompletionContext
from ..models._types import SystemMessage
from ._base_memory import Memory, MemoryContent, MemoryQueryResult, UpdateContextResult


class ListMemoryConfig(BaseModel):
    name: str | None = None
    memory_contents: list[MemoryContent] = Field(default_factory=list)


class ListMemoryState(BaseModel):
    """What :meth:`ListMemory.save_state` returns, as JSON."""

    memory_contents: list[MemoryContent] = Field(default_factory=list)


class ListMemory(Memory, Component[ListMemoryConfig]):
    """A memory that keeps its entries in a list, in the order they were added, and gives a
    model context all of them, as one ``SystemMessage``.

    ``content`` is the list itself, for applications that manage entries directly.

    Example::

        memory = ListMemory(name="preferences")
        await memory.add(MemoryContent(content="Prefers metric units", mime_type="text/plain"))
        await memory.update_context(model_context)  # adds the SystemMessage

    Args:
        name: identifies the memory (``"default_list_memory"`` when not given).
        memory_contents: the entries it starts with.
    """

    component_provider_override = "agnext_broker.memory.ListMemory"
    component_config_schema = ListMemoryConfig

    def __init__(
        self, name: str | None = None, memory_contents: list[MemoryContent] | None = None
    ) -> None:
        self._name = name or "default_list_memory"
        self._contents: list[MemoryContent] = list(memory_contents or [])

    @property
    def name(self) -> str:
        return self._name

    @property
    def content(self) -> list[MemoryContent]:
        return self._contents

    @content.setter
    def content(self, value: list[MemoryContent]) -> None:
        self._contents = value

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Add every entry to ``model_context`` as one numbered ``SystemMessage`` (nothing when
        the memory is empty)."""
        if not self._contents:
            return UpdateContextResult(memories=MemoryQueryResult(results=[]))
        numbered = "\n".join(
            f"{number}. {memory.content!s}" for number, memory in enumerate(self._contents, 1)
        )
        await model_context.add_message(
            SystemMessage(
                content=f"\nRelevant memory content (in chronological order):\n{numbered}\n"
            )
        )
        return UpdateContextResult(memories=MemoryQueryResult(results=list(self._contents)))

    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """Every entry: a list memory does not filter."""
        return MemoryQueryResult(results=list(self._contents))

    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        self._contents.append(content)

    async def clear(self) -> None:
        self._contents = []

    async def close(self) -> None:
        pass

    async def save_state(self) -> Mapping[str, Any]:
        """Every entry, as a JSON-able mapping (autogen-core's ListMemory has no state methods;
        these let an agent keep its memory in its own saved state)."""
        return ListMemoryState(memory_contents=self._contents).model_dump(mode="json")

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self._contents = ListMemoryState.model_validate(state).memory_contents

    def _to_config(self) -> ListMemoryConfig:
        return ListMemoryConfig(name=self._name, memory_contents=self._contents)

    @classmethod
    def _from_config(cls, config: ListMemoryConfig) -> Self:
        return cls(name=config.name, memory_contents=config.memory_contents)

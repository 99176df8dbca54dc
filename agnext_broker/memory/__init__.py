"""Memory that enriches an agent's model context (autogen-core's ``autogen_core.memory``)."""

from ..components.memory._base_memory import (
    Memory,
    MemoryContent,
    MemoryMimeType,
    MemoryQueryResult,
    UpdateContextResult,
)
from ..components.memory._list_memory import ListMemory

__all__ = [
    "ListMemory",
    "Memory",
    "MemoryContent",
    "MemoryMimeType",
    "MemoryQueryResult",
    "UpdateContextResult",
]

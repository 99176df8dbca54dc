"""ListMemory: what it gives a model context, and that its entries survive JSON."""

from __future__ import annotations

import json

from agnext_broker import Image
from agnext_broker.memory import (
    ListMemory,
    Memory,
    MemoryContent,
    MemoryMimeType,
    UpdateContextResult,
)
from agnext_broker.model_context import BufferedChatCompletionContext
from agnext_broker.models import SystemMessage, UserMessage

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(16))


async def test_query_returns_every_entry_in_order() -> None:
    memory = ListMemory(name="prefs")
    first = MemoryContent(content="metric units", mime_type=MemoryMimeType.TEXT)
    second = MemoryContent(content={"tone": "formal"}, mime_type=MemoryMimeType.JSON)
    await memory.add(first)
    await memory.add(second)
    assert (await memory.query("anything")).results == [first, second]
    assert memory.name == "prefs"
    assert isinstance(memory, Memory)


async def test_update_context_adds_one_numbered_system_message() -> None:
    memory = ListMemory()
    await memory.add(MemoryContent(content="likes tea", mime_type="text/plain"))
    await memory.add(MemoryContent(content="lives in Oslo", mime_type="text/plain"))
    context = BufferedChatCompletionContext(buffer_size=5)
    await context.add_message(UserMessage(content="what should I drink?", source="user"))

    result = await memory.update_context(context)

    assert [m.content for m in result.memories.results] == ["likes tea", "lives in Oslo"]
    assert (await context.get_messages())[-1] == SystemMessage(
        content="\nRelevant memory content (in chronological order):\n"
        "1. likes tea\n2. lives in Oslo\n"
    )


async def test_an_empty_memory_leaves_the_context_alone() -> None:
    context = BufferedChatCompletionContext(buffer_size=5)
    result = await ListMemory().update_context(context)
    assert result == UpdateContextResult.model_validate({"memories": {"results": []}})
    assert await context.get_messages() == []


async def test_entries_of_every_kind_survive_json_into_a_new_memory() -> None:
    memory = ListMemory()
    entries = [
        MemoryContent(content="text", mime_type=MemoryMimeType.TEXT, metadata={"at": 1}),
        MemoryContent(content="# title", mime_type="text/markdown"),
        MemoryContent(content={"k": [1, 2]}, mime_type=MemoryMimeType.JSON),
        MemoryContent(content=b"\x00\xffbinary", mime_type=MemoryMimeType.BINARY),
        MemoryContent(content=Image(PNG), mime_type=MemoryMimeType.IMAGE),
    ]
    for entry in entries:
        await memory.add(entry)
    saved = json.loads(json.dumps(await memory.save_state()))

    resumed = ListMemory()
    await resumed.load_state(saved)

    restored = resumed.content
    assert [entry.content for entry in restored] == [entry.content for entry in entries]
    assert [entry.mime_type_value for entry in restored] == [
        entry.mime_type_value for entry in entries
    ]
    assert restored[0].metadata == {"at": 1}
    assert await resumed.save_state() == saved


async def test_clear_forgets_every_entry() -> None:
    memory = ListMemory(memory_contents=[MemoryContent(content="x", mime_type="text/plain")])
    await memory.clear()
    assert (await memory.query("")).results == []

"""Component configuration: dump a component to JSON and load an equal one back."""

from __future__ import annotations

import json
from typing import Self

import pytest
from pydantic import BaseModel

from agnext_broker import Component, ComponentBase, ComponentLoader, ComponentModel
from agnext_broker.memory import ListMemory, Memory, MemoryContent
from agnext_broker.model_context import (
    BufferedChatCompletionContext,
    ChatCompletionContext,
    HeadAndTailChatCompletionContext,
    TokenLimitedChatCompletionContext,
    UnboundedChatCompletionContext,
)
from agnext_broker.models import ChatCompletionClient, SystemMessage

from .counting_client import WordCountingClient

INITIAL = [SystemMessage(content="be brief")]


def through_json(model: ComponentModel) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(model.model_dump_json())
    return loaded


@pytest.mark.parametrize(
    "context",
    [
        UnboundedChatCompletionContext(initial_messages=INITIAL),
        BufferedChatCompletionContext(buffer_size=3, initial_messages=INITIAL),
        HeadAndTailChatCompletionContext(head_size=1, tail_size=2, initial_messages=INITIAL),
        TokenLimitedChatCompletionContext(
            WordCountingClient(window=64), token_limit=32, initial_messages=INITIAL
        ),
    ],
    ids=lambda context: type(context).__name__,
)
async def test_model_contexts_dump_and_load(context: ChatCompletionContext) -> None:
    dumped = context.dump_component()
    assert dumped.provider == f"agnext_broker.model_context.{type(context).__name__}"
    assert dumped.component_type == "chat_completion_context"

    loaded = ChatCompletionContext.load_component(through_json(dumped))

    assert type(loaded) is type(context)
    assert loaded.dump_component() == dumped
    assert await loaded.get_messages() == INITIAL


def test_the_token_limited_context_dumps_its_model_client_too() -> None:
    dumped = TokenLimitedChatCompletionContext(WordCountingClient(window=64)).dump_component()
    assert dumped.config["model_client"]["config"] == {"window": 64}
    loaded = TokenLimitedChatCompletionContext.load_component(dumped)
    assert isinstance(loaded._model_client, WordCountingClient)
    assert loaded._model_client.window == 64


def test_a_configuration_written_by_autogen_core_loads_here() -> None:
    # as autogen-core 0.7 dumps BufferedChatCompletionContext(buffer_size=5)
    autogen_core_dump = {
        "provider": "autogen_core.model_context.BufferedChatCompletionContext",
        "component_type": "chat_completion_context",
        "version": 1,
        "component_version": 1,
        "description": "A buffered chat completion context...",
        "label": "BufferedChatCompletionContext",
        "config": {"buffer_size": 5},
    }
    loaded = ChatCompletionContext.load_component(autogen_core_dump)
    assert isinstance(loaded, BufferedChatCompletionContext)


async def test_list_memory_dumps_and_loads_with_its_entries() -> None:
    memory = ListMemory(
        name="facts", memory_contents=[MemoryContent(content="sky is blue", mime_type="text/plain")]
    )
    loaded = Memory.load_component(through_json(memory.dump_component()))
    assert isinstance(loaded, ListMemory)
    assert loaded.name == "facts"
    assert [entry.content for entry in loaded.content] == ["sky is blue"]


def test_loading_checks_the_type_it_loads_as() -> None:
    dumped = BufferedChatCompletionContext(buffer_size=2).dump_component()
    with pytest.raises(TypeError):
        ChatCompletionClient.load_component(dumped)
    with pytest.raises(TypeError):
        ComponentLoader.load_component(dumped, ListMemory)
    assert isinstance(
        ComponentLoader.load_component(dumped, ChatCompletionContext),
        BufferedChatCompletionContext,
    )


def test_a_provider_that_is_not_a_component_is_refused() -> None:
    with pytest.raises(TypeError, match="not a component"):
        ComponentLoader.load_component(
            {"provider": "agnext_broker.models.UserMessage", "config": {}}
        )
    with pytest.raises(ValueError, match="Invalid provider"):
        ComponentLoader.load_component({"provider": "nodots", "config": {}})


class Settings(BaseModel):
    value: str


class Setting(ComponentBase[Settings], Component[Settings]):
    """A custom component.

    Args:
        value: anything.
    """

    component_type = "custom"
    component_config_schema = Settings

    def __init__(self, value: str) -> None:
        self.value = value

    def _to_config(self) -> Settings:
        return Settings(value=self.value)

    @classmethod
    def _from_config(cls, config: Settings) -> Self:
        return cls(config.value)


def test_a_users_component_round_trips_with_its_docstring_as_description() -> None:
    dumped = Setting("x").dump_component()
    assert dumped.provider == f"{__name__}.Setting"
    assert dumped.description == "A custom component."
    assert dumped.label == "Setting"
    assert Setting.load_component(dumped).value == "x"


def test_a_class_defined_in_a_function_cannot_be_dumped() -> None:
    class Local(Setting):
        pass

    with pytest.raises(TypeError, match="inside a function"):
        Local("x").dump_component()


def test_a_component_without_its_schema_is_warned_about() -> None:
    with pytest.warns(UserWarning, match="component_config_schema"):

        class Incomplete(ComponentBase[Settings], Component[Settings]):
            component_type = "custom"

    assert Incomplete

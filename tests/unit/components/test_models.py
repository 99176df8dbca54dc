"""The LLM message types: autogen-core's JSON, wire types of every runtime, model info checks."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import TypeAdapter, ValidationError

from agnext_broker import FunctionCall, Image, UnknownPayload
from agnext_broker.base import SerializationRegistry
from agnext_broker.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelFamily,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
    validate_model_info,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))

CALLS = [
    FunctionCall(id="call_1", arguments='{"city": "Oslo"}', name="weather"),
    FunctionCall(id="call_2", arguments="{}", name="time"),
]


def test_assistant_message_with_function_calls_round_trips_through_the_registry() -> None:
    registry = SerializationRegistry()
    message = AssistantMessage(content=CALLS, thought="two lookups", source="planner")
    type_name, content_type, payload = registry.serialize(message)
    assert type_name == "AssistantMessage"
    decoded = registry.deserialize(payload, type_name=type_name, data_content_type=content_type)
    assert decoded == message
    assert isinstance(decoded.content[0], FunctionCall)


@pytest.mark.parametrize(
    "message",
    [
        UserMessage(content="hello", source="user"),
        UserMessage(content=["look:", Image(PNG)], source="user"),
        SystemMessage(content="be brief"),
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(content="3 C", name="weather", call_id="call_1")]
        ),
        CreateResult(
            finish_reason="function_calls",
            content=CALLS,
            usage=RequestUsage(prompt_tokens=10, completion_tokens=5),
            cached=False,
        ),
        CALLS[0],
    ],
)
def test_a_runtime_decodes_llm_types_it_was_never_told_about(message: object) -> None:
    # a worker that receives an AssistantMessage as an RPC response has not registered it
    _, content_type, payload = SerializationRegistry().serialize(message)
    fresh = SerializationRegistry()
    decoded = fresh.deserialize(
        payload, type_name=type(message).__name__, data_content_type=content_type
    )
    assert not isinstance(decoded, UnknownPayload)
    assert decoded == message


def test_json_written_by_autogen_core_parses_into_the_llm_message_union() -> None:
    # as autogen-core 0.7's model_dump_json writes a conversation
    conversation = [
        {"content": "You are a helpful assistant.", "type": "SystemMessage"},
        {
            "content": ["Describe", {"data": base64.b64encode(PNG).decode()}],
            "source": "user",
            "type": "UserMessage",
        },
        {
            "content": [{"id": "call_1", "arguments": "{}", "name": "time"}],
            "thought": None,
            "source": "assistant",
            "type": "AssistantMessage",
        },
        {
            "content": [
                {"content": "12:00", "name": "time", "call_id": "call_1", "is_error": False}
            ],
            "type": "FunctionExecutionResultMessage",
        },
    ]
    adapter = TypeAdapter(list[LLMMessage])
    messages = adapter.validate_json(json.dumps(conversation))
    assert [type(m) for m in messages] == [
        SystemMessage,
        UserMessage,
        AssistantMessage,
        FunctionExecutionResultMessage,
    ]
    assert messages[1].content[1] == Image(PNG)
    assert json.loads(adapter.dump_json(messages)) == conversation


def test_an_unknown_type_discriminator_is_refused() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(LLMMessage).validate_python({"content": "x", "type": "ToolMessage"})


def test_image_keeps_its_bytes_and_speaks_data_uris() -> None:
    image = Image(PNG)
    assert image.mime_type == "image/png"
    assert Image.from_uri(image.to_data_uri()) == image
    assert image.to_openai_format()["image_url"]["url"].startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="base64"):
        Image.from_base64("not base64!")
    with pytest.raises(ValueError, match="URI"):
        Image.from_uri("https://example.com/cat.png")


def test_validate_model_info_refuses_a_missing_required_field() -> None:
    info: ModelInfo = {"vision": False, "function_calling": True, "json_output": True}  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match="Missing required field 'family'"):
        validate_model_info(info)


def test_validate_model_info_warns_when_structured_output_is_missing() -> None:
    info: ModelInfo = {  # type: ignore[typeddict-item]
        "vision": False,
        "function_calling": True,
        "json_output": True,
        "family": ModelFamily.GPT_4O,
    }
    with pytest.warns(UserWarning, match="structured_output"):
        validate_model_info(info)
    validate_model_info({**info, "structured_output": True})


def test_model_family_is_a_namespace() -> None:
    assert ModelFamily.is_openai(ModelFamily.GPT_41)
    assert ModelFamily.is_claude("claude-3-7-sonnet")
    assert not ModelFamily.is_gemini("my-own-model")
    with pytest.raises(TypeError):
        ModelFamily()

"""The OpenAI client's requests and answers, against a local server that speaks the chat
completions protocol: messages, tools and tool choice, finish reasons, streams with tool-call
deltas, structured output, usage.

No model endpoint is reachable from CI: ``ChatCompletionsServer`` answers what each test
scripts, and records what the client sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from agnext_broker import FunctionCall, Image
from agnext_broker.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    ModelFamily,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from agnext_broker.tools import FunctionTool

from .chat_completions_server import ChatCompletionsServer, Reply, chunk, completion, tool_call
from .support import HELLO, INFO, WEATHER_SCHEMA, Make, WeatherTool


class Answer(BaseModel):
    city: str
    temperature: float = Field(description="degrees Celsius")
    note: str | None = None


async def collect(stream: AsyncIterator[str | CreateResult]) -> list[str | CreateResult]:
    return [item async for item in stream]


async def test_create_returns_the_answer_with_its_usage(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(completion("Hello!", usage=(11, 3)), completion("Again.", usage=(20, 2)))
    client = make_client(temperature=0.2)
    assert isinstance(client, ChatCompletionClient)

    result = await client.create(HELLO)

    assert result == CreateResult(
        finish_reason="stop", content="Hello!", usage=RequestUsage(11, 3), cached=False
    )
    request = server.last
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "test-model"
    assert request.body["temperature"] == 0.2
    assert request.body["messages"] == [{"role": "user", "content": "Say hello", "name": "user"}]
    assert "tools" not in request.body
    assert "tool_choice" not in request.body

    await client.create(HELLO, extra_create_args={"max_tokens": 5})
    assert server.last.body["max_tokens"] == 5
    assert client.total_usage() == RequestUsage(31, 5)
    assert client.actual_usage() == RequestUsage(31, 5)
    await client.close()


async def test_every_message_kind_goes_out_in_the_api_s_form(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(completion("ok"))
    png = Image(b"\x89PNG\r\n\x1a\n" + bytes(16))
    calls = [FunctionCall(id="call_1", arguments='{"city": "Oslo"}', name="weather")]
    client = make_client(add_name_prefixes=True)

    await client.create(
        [
            SystemMessage(content="Be brief."),
            UserMessage(content=["What is here?", png], source="alice"),
            AssistantMessage(content=calls, thought="Looking it up.", source="helper"),
            FunctionExecutionResultMessage(
                content=[FunctionExecutionResult(content="12C", name="weather", call_id="call_1")]
            ),
            AssistantMessage(content="It is 12C.", source="helper"),
        ]
    )

    assert server.last.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "name": "alice",
            "content": [
                {"type": "text", "text": "alice said:\nWhat is here?"},
                {"type": "image_url", "image_url": {"url": png.to_data_uri(), "detail": "auto"}},
            ],
        },
        {
            "role": "assistant",
            "name": "helper",
            "content": "Looking it up.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "content": "12C", "tool_call_id": "call_1"},
        {"role": "assistant", "name": "helper", "content": "It is 12C."},
    ]


async def test_names_can_be_left_out_and_system_messages_merged(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(completion("ok"))
    one_system_message = ModelInfo(
        vision=False,
        function_calling=False,
        json_output=False,
        family=ModelFamily.UNKNOWN,
        structured_output=False,
    )
    client = make_client(model_info=one_system_message, include_name_in_message=False)

    await client.create(
        [SystemMessage(content="One."), SystemMessage(content="Two."), *HELLO],
    )

    assert server.last.body["messages"] == [
        {"role": "system", "content": "One.\nTwo."},
        {"role": "user", "content": "Say hello"},
    ]
    with pytest.raises(ValueError, match="Not continuous system messages"):
        await client.create([SystemMessage(content="One."), *HELLO, SystemMessage(content="2")])


async def test_a_tool_call_answer_is_a_list_of_function_calls(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(
        completion(
            "Let me look.",
            tool_calls=[
                tool_call("call_1", "weather", '{"city": "Oslo"}'),
                tool_call("call_2", "weather", '{"city": "Rome"}'),
            ],
            finish_reason="tool_calls",
        )
    )
    client = make_client()

    result = await client.create(HELLO, tools=[WeatherTool(), WEATHER_SCHEMA | {"name": "w2"}])

    assert result.finish_reason == "function_calls"
    assert result.content == [
        FunctionCall(id="call_1", arguments='{"city": "Oslo"}', name="weather"),
        FunctionCall(id="call_2", arguments='{"city": "Rome"}', name="weather"),
    ]
    assert result.thought == "Let me look."
    body = server.last.body
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": "The weather in a city",
                "parameters": WEATHER_SCHEMA["parameters"],
                "strict": False,
            },
        }
        for name in ("weather", "w2")
    ]


async def test_a_function_tool_goes_out_with_its_schema_and_can_be_required(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    async def weather(city: Annotated[str, "the city"]) -> str:
        return "12C"

    tool = FunctionTool(weather, description="The weather in a city")
    server.answer(completion(None, tool_calls=[tool_call("c1", "weather", '{"city": "Oslo"}')]))

    result = await make_client().create(HELLO, tools=[tool], tool_choice=tool)

    assert result.content == [FunctionCall(id="c1", arguments='{"city": "Oslo"}', name="weather")]
    body = server.last.body
    assert body["tools"] == [{"type": "function", "function": dict(tool.schema)}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}


async def test_tool_calls_count_whatever_finish_reason_a_server_gives(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    # Ollama says "stop" with tool calls, and some servers send the arguments as an object
    call = {"id": "c", "type": "function", "function": {"name": "weather", "arguments": {"a": 1}}}
    server.answer(completion(None, tool_calls=[call], finish_reason="stop"))

    result = await make_client().create(HELLO, tools=[WeatherTool()])

    assert result.finish_reason == "function_calls"
    assert result.content == [FunctionCall(id="c", arguments='{"a": 1}', name="weather")]
    assert result.thought is None


async def test_tool_choice_goes_out_as_the_api_names_it(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    client = make_client()
    named = {"type": "function", "function": {"name": "weather"}}
    for tool_choice, sent in [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        (WeatherTool(), named),
        (WEATHER_SCHEMA, named),
    ]:
        server.answer(completion("ok"))
        await client.create(HELLO, tools=[WeatherTool()], tool_choice=tool_choice)
        assert server.last.body["tool_choice"] == sent


async def test_a_tool_choice_that_is_not_among_the_tools_is_refused(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    client = make_client()
    other = WEATHER_SCHEMA | {"name": "other"}
    with pytest.raises(ValueError, match="'other' but it's not in the provided tools"):
        await client.create(HELLO, tools=[WeatherTool()], tool_choice=other)
    with pytest.raises(ValueError, match="no tools provided"):
        await client.create(HELLO, tool_choice=WeatherTool())
    with pytest.raises(ValueError, match="tool_choice must be a Tool object"):
        await client.create(HELLO, tools=[WeatherTool()], tool_choice="always")
    assert server.requests == []


async def test_finish_reasons_map_as_in_autogen(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    client = make_client()
    for reason, expected in [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("tool_calls", "function_calls"),
        ("function_calls", "function_calls"),
        ("end_turn", "stop"),
        ("eos", "unknown"),
        (None, "unknown"),
    ]:
        server.answer(completion("text", finish_reason=reason))
        result = await client.create(HELLO)
        assert result.finish_reason == expected, reason


async def test_a_stream_yields_text_chunks_then_the_result_with_usage(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(
        Reply(
            events=[
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": "Hel"}),
                chunk({"content": "lo!"}),
                chunk({}, finish_reason="stop"),
                chunk(None, usage=(9, 2)),
            ]
        )
    )
    client = make_client()

    items = await collect(client.create_stream(HELLO, include_usage=True))

    assert items == [
        "Hel",
        "lo!",
        CreateResult(
            finish_reason="stop", content="Hello!", usage=RequestUsage(9, 2), cached=False
        ),
    ]
    assert server.last.body["stream"] is True
    assert server.last.body["stream_options"] == {"include_usage": True}
    assert client.total_usage() == RequestUsage(9, 2)


async def test_streamed_tool_call_deltas_are_put_together(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    first = {"index": 0, "id": "call_1", "type": "function"}
    second = {"index": 1, "id": "call_2", "type": "function"}
    server.answer(
        Reply(
            events=[
                chunk({"role": "assistant", "tool_calls": [first | {"function": {"name": "wea"}}]}),
                chunk(
                    {"tool_calls": [{"index": 0, "function": {"name": "ther", "arguments": ""}}]}
                ),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
                chunk(
                    {"tool_calls": [second | {"function": {"name": "weather", "arguments": ""}}]}
                ),
                chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                chunk({}, finish_reason="tool_calls"),
            ]
        )
    )

    items = await collect(make_client().create_stream(HELLO, tools=[WeatherTool()]))

    assert items == [
        CreateResult(
            finish_reason="function_calls",
            content=[
                FunctionCall(id="call_1", arguments='{"city": "Oslo"}', name="weather"),
                FunctionCall(id="call_2", arguments="{}", name="weather"),
            ],
            usage=RequestUsage(0, 0),  # not asked for: the server reports none
            cached=False,
        )
    ]
    assert "stream_options" not in server.last.body


async def test_structured_output_sends_a_strict_json_schema(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    answer = Answer(city="Oslo", temperature=12.5)
    server.answer(completion(answer.model_dump_json()), completion('{"a": 1}'))
    client = make_client()

    result = await client.create(HELLO, json_output=Answer)

    assert isinstance(result.content, str)
    assert Answer.model_validate_json(result.content) == answer
    response_format = server.last.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Answer"
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "temperature", "note"]
    assert schema["properties"]["temperature"]["description"] == "degrees Celsius"
    assert "default" not in schema["properties"]["note"]

    await client.create(HELLO, json_output=True)
    assert server.last.body["response_format"] == {"type": "json_object"}


async def test_what_the_model_does_not_support_is_refused_before_a_request(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    nothing = ModelInfo(
        vision=False,
        function_calling=False,
        json_output=False,
        family=ModelFamily.UNKNOWN,
        structured_output=False,
    )
    client = make_client(model_info=nothing)
    picture = [UserMessage(content=["look", Image(b"GIF89a" + bytes(8))], source="user")]
    with pytest.raises(ValueError, match="vision"):
        await client.create(picture)
    with pytest.raises(ValueError, match="function calling"):
        await client.create(HELLO, tools=[WeatherTool()])
    with pytest.raises(ValueError, match="JSON output"):
        await client.create(HELLO, json_output=True)
    with pytest.raises(ValueError, match="structured output"):
        await client.create(HELLO, json_output=Answer)
    with pytest.raises(ValueError, match="Extra create args are invalid"):
        await client.create(HELLO, extra_create_args={"temprature": 1})
    with pytest.raises(ValueError, match="Disallowed create args"):
        await client.create(HELLO, extra_create_args={"stream": True})
    assert server.requests == []


async def test_a_reasoning_model_s_thought_is_kept_apart(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    r1 = INFO | {"family": ModelFamily.R1}
    server.answer(
        completion("<think>Two and two.</think>\nFour."),
        completion("Four.", reasoning_content="Adding."),
    )
    client = make_client(model_info=r1)

    tagged = await client.create(HELLO)
    separate = await client.create(HELLO)

    assert (tagged.thought, tagged.content) == ("Two and two.", "Four.")
    assert (separate.thought, separate.content) == ("Adding.", "Four.")

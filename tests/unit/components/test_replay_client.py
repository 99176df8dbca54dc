"""ReplayChatCompletionClient: scripted answers in order, streams, usage, reset, configuration."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from agnext_broker import CancellationToken, FunctionCall
from agnext_broker.models import (
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelFamily,
    ModelInfo,
    ReplayChatCompletionClient,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from agnext_broker.models.replay import ReplayChatCompletionClient as FromReplayModule

ASK: list[LLMMessage] = [
    SystemMessage(content="You help."),
    UserMessage(content="What can you do?", source="user"),
]
CALL = CreateResult(
    finish_reason="function_calls",
    content=[FunctionCall(id="call_1", arguments='{"city": "Oslo"}', name="weather")],
    usage=RequestUsage(prompt_tokens=99, completion_tokens=7),
    cached=False,
)


async def test_answers_come_in_order_and_then_run_out() -> None:
    client = ReplayChatCompletionClient(["Hello, how can I help?", CALL])
    assert isinstance(client, ChatCompletionClient)
    assert FromReplayModule is ReplayChatCompletionClient

    first = await client.create(ASK)
    second = await client.create(ASK)

    assert first == CreateResult(
        finish_reason="stop",
        content="Hello, how can I help?",
        usage=RequestUsage(prompt_tokens=6, completion_tokens=5),  # words, both ways
        cached=True,
    )
    assert second is CALL
    # a scripted CreateResult keeps its completion tokens; the prompt is counted
    assert client.actual_usage() == RequestUsage(prompt_tokens=6, completion_tokens=7)
    assert client.total_usage() == RequestUsage(prompt_tokens=12, completion_tokens=12)
    with pytest.raises(ValueError, match="No more mock responses available"):
        await client.create(ASK)


async def test_a_stream_splits_a_string_answer_into_words() -> None:
    client = ReplayChatCompletionClient(["Happy to help you", CALL])

    text = [item async for item in client.create_stream(ASK)]
    calls = [item async for item in client.create_stream(ASK)]

    assert text[:-1] == ["Happy ", "to ", "help ", "you"]
    assert text[-1] == CreateResult(
        finish_reason="stop",
        content="Happy to help you",
        usage=RequestUsage(prompt_tokens=6, completion_tokens=4),
        cached=True,
    )
    assert calls == [CALL]
    assert client.total_usage() == RequestUsage(prompt_tokens=12, completion_tokens=11)
    with pytest.raises(ValueError, match="No more mock responses available"):
        await anext(client.create_stream(ASK))


async def test_reset_starts_again_from_the_first_answer() -> None:
    client = ReplayChatCompletionClient(["only one"])
    await client.create(ASK)

    client.reset()

    assert client.total_usage() == RequestUsage(prompt_tokens=0, completion_tokens=0)
    assert (await client.create(ASK)).content == "only one"


def test_tokens_are_words_of_text_content_within_ten_thousand(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = ReplayChatCompletionClient([])
    results = FunctionExecutionResultMessage(
        content=[FunctionExecutionResult(content="12C", name="weather", call_id="call_1")]
    )

    with caplog.at_level(logging.WARNING):
        assert client.count_tokens([*ASK, results]) == 6

    assert "only on string content" in caplog.text
    assert client.remaining_tokens(ASK) == 10000


async def test_calls_are_recorded_and_cached_and_model_info_can_be_set() -> None:
    info = ModelInfo(
        vision=False,
        function_calling=True,
        json_output=True,
        family=ModelFamily.UNKNOWN,
        structured_output=True,
    )
    client = ReplayChatCompletionClient(["a", "b"], model_info=info)
    client.set_cached_bool_value(False)
    schema = {"name": "weather", "parameters": {"type": "object", "properties": {}}}

    result = await client.create(ASK, tools=[schema], extra_create_args={"seed": 1})
    [_ async for _ in client.create_stream(ASK, json_output=True)]

    assert result.cached is False
    assert client.model_info == info
    assert [call["tools"] for call in client.create_calls] == [[schema], ()]
    assert client.create_calls[0]["extra_create_args"] == {"seed": 1}
    assert client.create_calls[1]["json_output"] is True
    with pytest.raises(ValueError, match="Missing required field 'function_calling'"):
        ReplayChatCompletionClient([], model_info={"vision": False})  # type: ignore[arg-type]


async def test_a_cancelled_token_ends_the_call_without_using_an_answer() -> None:
    client = ReplayChatCompletionClient(["kept"])
    token = CancellationToken()
    token.cancel()

    with pytest.raises(asyncio.CancelledError):
        await client.create(ASK, cancellation_token=token)

    assert (await client.create(ASK)).content == "kept"


async def test_the_configuration_round_trips_through_json() -> None:
    client = ReplayChatCompletionClient(["first", CALL])

    dumped = json.loads(client.dump_component().model_dump_json())
    loaded = ChatCompletionClient.load_component(dumped)

    assert dumped["provider"] == "agnext_broker.models.ReplayChatCompletionClient"
    assert dumped["component_type"] == "replay_chat_completion_client"
    assert isinstance(loaded, ReplayChatCompletionClient)
    assert loaded.chat_completions == ["first", CALL]
    assert loaded.model_info == client.model_info
    assert (await loaded.create(ASK)).content == "first"

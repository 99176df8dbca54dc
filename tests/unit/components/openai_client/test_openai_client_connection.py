"""The OpenAI client's connection to the server: retries, cancellation, settings from the
environment, Azure, its component configuration, token estimates and the missing extra.

Against a local server that speaks the chat completions protocol (no model endpoint is
reachable from CI).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import openai
import pytest

from agnext_broker import CancellationToken
from agnext_broker.models import ChatCompletionClient, ModelFamily, UserMessage
from agnext_broker.models.openai import (
    AzureOpenAIChatCompletionClient,
    OpenAIChatCompletionClient,
)

from .chat_completions_server import ChatCompletionsServer, Reply, chunk, completion, error
from .support import BOUND, HELLO, INFO, Make, WeatherTool


async def test_a_429_is_retried_and_then_answered(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(error(429, "Rate limit reached"), completion("after the wait"))

    result = await make_client(max_retries=2).create(HELLO)

    assert result.content == "after the wait"
    assert len(server.requests) == 2


async def test_a_500_that_persists_fails_after_the_retries(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(*[error(500, "The server had an error")] * 3)

    with pytest.raises(openai.InternalServerError, match="500") as raised:
        await make_client(max_retries=2).create(HELLO)

    assert raised.value.status_code == 500
    assert "The server had an error" in str(raised.value)
    assert len(server.requests) == 3  # the first try and two retries


async def test_cancelling_the_token_closes_the_request(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(Reply(hang=True))
    token = CancellationToken()
    call = asyncio.create_task(make_client().create(HELLO, cancellation_token=token))
    await asyncio.wait_for(server.waiting.wait(), BOUND)

    token.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, BOUND)
    await asyncio.wait_for(server.disconnected.wait(), BOUND)


async def test_cancelling_the_token_mid_stream_closes_the_response(
    server: ChatCompletionsServer, make_client: Make
) -> None:
    server.answer(Reply(events=[chunk({"content": "Once upon"})], hang=True))
    token = CancellationToken()
    stream = make_client().create_stream(HELLO, cancellation_token=token)
    assert await asyncio.wait_for(anext(stream), BOUND) == "Once upon"
    following = asyncio.ensure_future(anext(stream))
    await asyncio.wait_for(server.waiting.wait(), BOUND)

    token.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(following, BOUND)
    await asyncio.wait_for(server.disconnected.wait(), BOUND)


async def test_key_url_and_model_come_from_the_variables(
    server: ChatCompletionsServer,
    monkeypatch: pytest.MonkeyPatch,
    opened: list[ChatCompletionClient],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4o")  # a model it knows: no model_info needed
    server.answer(completion("ok"))

    client = OpenAIChatCompletionClient()
    opened.append(client)
    await client.create(HELLO)

    assert server.last.headers["authorization"] == "Bearer sk-from-env"
    assert server.last.body["model"] == "gpt-4o"
    assert client.model_info["family"] == ModelFamily.GPT_4O


def test_a_model_is_required_and_an_unknown_one_needs_model_info() -> None:
    with pytest.raises(ValueError, match="OPENAI_MODEL"):
        OpenAIChatCompletionClient(api_key="sk")
    with pytest.raises(ValueError, match="model_info is required"):
        OpenAIChatCompletionClient(model="llama3.2", api_key="sk")
    with pytest.raises(ValueError, match="Missing required field 'family'"):
        OpenAIChatCompletionClient(
            model="llama3.2",
            api_key="sk",
            model_info={"vision": False, "function_calling": False, "json_output": False},  # type: ignore[arg-type]
        )


async def test_azure_sends_to_the_deployment_with_the_api_version_and_key(
    server: ChatCompletionsServer, opened: list[ChatCompletionClient]
) -> None:
    server.answer(completion("from Azure"))
    client = AzureOpenAIChatCompletionClient(
        azure_endpoint=server.root,
        azure_deployment="my-gpt4o",
        api_version="2024-06-01",
        api_key="azure-key",
        model="gpt-4o",
    )
    opened.append(client)

    result = await client.create(HELLO)

    assert result.content == "from Azure"
    request = server.last
    assert request.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert request.query == {"api-version": ["2024-06-01"]}
    assert request.headers["api-key"] == "azure-key"


async def test_a_dumped_client_loads_again_and_its_json_hides_the_key(
    server: ChatCompletionsServer, make_client: Make, opened: list[ChatCompletionClient]
) -> None:
    server.answer(completion("loaded"))
    dumped = make_client(temperature=0.5, max_retries=1).dump_component()

    assert dumped.provider == "agnext_broker.models.openai.OpenAIChatCompletionClient"
    assert "sk-test" not in dumped.model_dump_json()
    loaded = ChatCompletionClient.load_component(dumped)
    opened.append(loaded)
    assert isinstance(loaded, OpenAIChatCompletionClient)
    await loaded.create(HELLO)
    assert server.last.headers["authorization"] == "Bearer sk-test"
    assert server.last.body["temperature"] == 0.5


def test_token_counts_are_estimates_within_the_model_s_window(
    opened: list[ChatCompletionClient],
) -> None:
    client = OpenAIChatCompletionClient(model="gpt-4o", api_key="sk")
    opened.append(client)
    short = client.count_tokens(HELLO)
    long = client.count_tokens([UserMessage(content="word " * 400, source="user")])
    with_tool = client.count_tokens(HELLO, tools=[WeatherTool()])

    assert 0 < short < long
    assert short < with_tool
    assert 400 <= long <= 600  # 2000 characters: about 500 tokens
    assert client.remaining_tokens(HELLO) == 128000 - short
    unknown = OpenAIChatCompletionClient(model="local", api_key="sk", model_info=INFO)
    opened.append(unknown)
    with pytest.raises(ValueError, match="context window"):
        unknown.remaining_tokens(HELLO)


def test_without_the_openai_package_the_import_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['openai'] = None\n"
        "try:\n"
        "    import agnext_broker.models.openai\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'agnext-broker[openai]'" in run.stdout
    assert json.dumps(run.stdout.strip()).count("\\n") == 0  # one line

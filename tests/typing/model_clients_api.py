"""Type-checked (by mypy --strict), never run: the model clients used the way autogen-ext users
use them."""

from __future__ import annotations

from pydantic import BaseModel

from agnext_broker import CancellationToken
from agnext_broker.models import (
    ChatCompletionClient,
    CreateResult,
    ModelFamily,
    ModelInfo,
    ReplayChatCompletionClient,
    RequestUsage,
    UserMessage,
)
from agnext_broker.models.openai import (
    AzureOpenAIChatCompletionClient,
    OpenAIChatCompletionClient,
)


class Weather(BaseModel):
    city: str
    temperature: float


async def ask(client: ChatCompletionClient, token: CancellationToken) -> str:
    messages = [UserMessage(content="Weather in Oslo?", source="user")]
    result: CreateResult = await client.create(
        messages, json_output=Weather, cancellation_token=token
    )
    assert isinstance(result.content, str)
    text = ""
    async for item in client.create_stream(messages, tool_choice="none"):
        if isinstance(item, str):
            text += item
    usage: RequestUsage = client.total_usage()
    return f"{Weather.model_validate_json(result.content).city} {text} {usage.prompt_tokens}"


async def clients() -> None:
    local = OpenAIChatCompletionClient(
        model="llama3.2",
        base_url="http://localhost:11434/v1",
        api_key="ollama",
        model_info=ModelInfo(
            vision=False,
            function_calling=True,
            json_output=True,
            family=ModelFamily.UNKNOWN,
            structured_output=True,
        ),
        temperature=0.0,
        max_retries=5,
    )
    azure = AzureOpenAIChatCompletionClient(
        azure_endpoint="https://example.openai.azure.com/",
        azure_deployment="gpt-4o",
        api_version="2024-06-01",
        model="gpt-4o",
    )
    replay = ReplayChatCompletionClient(["It is 12C."])
    token = CancellationToken()
    for client in (local, azure, replay):
        await ask(client, token)
    async for chunk in local.create_stream([], include_usage=True):
        print(chunk)
    replay.reset()
    await local.close()

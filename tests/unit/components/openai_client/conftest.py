"""Fixtures of the OpenAI client's tests: a local chat completions server, clients of it (closed
after each test), and no OpenAI or proxy settings from the environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agnext_broker.models import ChatCompletionClient
from agnext_broker.models.openai import OpenAIChatCompletionClient

from .chat_completions_server import ChatCompletionsServer
from .support import INFO, Make


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(("OPENAI_", "AZURE_OPENAI_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
async def server() -> AsyncIterator[ChatCompletionsServer]:
    async with ChatCompletionsServer() as running:
        yield running


@pytest.fixture
async def opened() -> AsyncIterator[list[ChatCompletionClient]]:
    """The clients a test made, closed after it (their HTTP connections with them)."""
    clients: list[ChatCompletionClient] = []
    yield clients
    for client in clients:
        await client.close()


@pytest.fixture
def make_client(server: ChatCompletionsServer, opened: list[ChatCompletionClient]) -> Make:
    """Makes clients of ``server`` (model ``test-model`` with ``INFO`` unless told otherwise)."""

    def make(**options: Any) -> OpenAIChatCompletionClient:
        options.setdefault("model_info", INFO)
        client = OpenAIChatCompletionClient(
            model="test-model", base_url=server.url, api_key="sk-test", **options
        )
        opened.append(client)
        return client

    return make

"""What the OpenAI client's tests share: the model info, messages and tools they send."""

from __future__ import annotations

from collections.abc import Callable

from agnext_broker.models import ModelFamily, ModelInfo, UserMessage
from agnext_broker.models.openai import OpenAIChatCompletionClient

BOUND = 10.0  # seconds: the longest any wait of these tests may take
INFO = ModelInfo(
    vision=True,
    function_calling=True,
    json_output=True,
    family=ModelFamily.UNKNOWN,
    structured_output=True,
    multiple_system_messages=True,
)
HELLO = [UserMessage(content="Say hello", source="user")]
WEATHER_SCHEMA = {
    "name": "weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

Make = Callable[..., OpenAIChatCompletionClient]


class WeatherTool:
    """Any object with a ``schema`` is a tool to the client (it reads nothing else)."""

    name = "weather"
    schema = WEATHER_SCHEMA

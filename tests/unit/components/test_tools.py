"""FunctionTool and BaseTool: schemas derived from signatures, running, state, configuration."""

import asyncio
import functools
import threading
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ValidationError

from agnext_broker import CancellationToken
from agnext_broker.code_executor import ImportFromModule
from agnext_broker.tools import BaseTool, BaseToolWithState, FunctionTool, Tool


class Address(BaseModel):
    """Where someone lives."""

    street: str
    city: str = "Paris"


class Weather(BaseModel):
    city: str
    degrees: float


async def get_weather(
    city: Annotated[str, "The city to look up"],
    unit: Annotated[str, "celsius or fahrenheit"] = "celsius",
) -> Weather:
    return Weather(city=city, degrees=21.5 if unit == "celsius" else 70.7)


def add(a: int, b: int) -> int:
    return a + b


def deliver(to: Annotated[Address, "The address to deliver to"], parcels: list[int]) -> str:
    # The nested argument arrives as the model, not as a dict.
    assert isinstance(to, Address)
    return f"{len(parcels)} parcels to {to.street}, {to.city}"


async def slow_echo(text: str, cancellation_token: CancellationToken) -> str:
    await asyncio.sleep(0)
    return f"{text} (cancelled: {cancellation_token.is_cancelled()})"


def test_the_schema_comes_from_the_signature_and_annotations() -> None:
    tool = FunctionTool(get_weather, description="The weather in a city.")
    assert isinstance(tool, Tool)
    assert tool.name == "get_weather"
    assert tool.schema == {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"description": "The city to look up", "title": "City", "type": "string"},
                "unit": {
                    "default": "celsius",
                    "description": "celsius or fahrenheit",
                    "title": "Unit",
                    "type": "string",
                },
            },
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": False,
    }
    assert tool.return_type() is Weather
    assert set(tool.args_type().model_fields) == {"city", "unit"}


def test_nested_models_are_inlined_with_their_descriptions() -> None:
    schema = FunctionTool(deliver, description="Deliver parcels.").schema
    assert "parameters" in schema
    to = schema["parameters"]["properties"]["to"]
    assert "$ref" not in to
    assert to["description"] == "The address to deliver to"
    assert set(to["properties"]) == {"street", "city"}
    assert schema["parameters"]["properties"]["parcels"]["type"] == "array"
    assert "$defs" not in str(schema)


async def test_async_and_sync_functions_run_from_json_arguments() -> None:
    token = CancellationToken()
    weather = FunctionTool(get_weather, description="weather")
    result = await weather.run_json({"city": "Oslo"}, token)
    assert result == Weather(city="Oslo", degrees=21.5)
    assert weather.return_value_as_string(result) == '{"city": "Oslo", "degrees": 21.5}'
    adder = FunctionTool(add, description="Add two numbers.", name="plus")
    assert adder.name == "plus"
    assert await adder.run_json({"a": 2, "b": "3"}, token) == 5
    assert adder.return_value_as_string(5) == "5"
    delivery = FunctionTool(deliver, description="Deliver parcels.")
    arguments = {"to": {"street": "1 rue X"}, "parcels": [1, 2]}
    assert await delivery.run_json(arguments, token) == "2 parcels to 1 rue X, Paris"


async def test_invalid_arguments_are_refused() -> None:
    adder = FunctionTool(add, description="Add two numbers.")
    with pytest.raises(ValidationError):
        await adder.run_json({"a": "not a number", "b": 1}, CancellationToken())
    with pytest.raises(ValidationError):
        await adder.run_json({"a": 1}, CancellationToken())


async def test_the_cancellation_token_is_passed_and_not_in_the_schema() -> None:
    tool = FunctionTool(slow_echo, description="Echo.")
    assert "parameters" in tool.schema
    assert set(tool.schema["parameters"]["properties"]) == {"text"}
    token = CancellationToken()
    assert await tool.run_json({"text": "hi"}, token) == "hi (cancelled: False)"


async def test_cancelling_ends_the_wait_for_a_sync_function() -> None:
    release = threading.Event()

    def blocking(seconds: int) -> int:
        release.wait(seconds)
        return seconds

    tool = FunctionTool(blocking, description="Blocks.")
    token = CancellationToken()
    running = asyncio.ensure_future(tool.run_json({"seconds": 30}, token))
    await asyncio.sleep(0)
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    release.set()


async def test_partial_functions_keep_their_remaining_parameters() -> None:
    tool = FunctionTool(functools.partial(add, 10), description="Add to ten.")
    assert tool.name == "add"
    assert "parameters" in tool.schema
    assert list(tool.schema["parameters"]["properties"]) == ["b"]
    assert await tool.run_json({"b": 5}, CancellationToken()) == 15


def test_strict_mode_needs_every_argument_required() -> None:
    strict = FunctionTool(add, description="Add.", strict=True)
    assert strict.schema["strict"] is True
    with_default = FunctionTool(get_weather, description="weather", strict=True)
    with pytest.raises(ValueError, match="Strict mode is enabled"):
        _ = with_default.schema


def test_unannotated_parameters_are_refused() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ValueError, match="no annotation"):
        FunctionTool(untyped, description="?")


def test_a_description_must_be_a_string() -> None:
    def odd(x: Annotated[int, 42]) -> int:
        return x

    with pytest.raises(ValueError, match="should be a string"):
        FunctionTool(odd, description="?")


async def test_configuration_round_trips_with_a_warning() -> None:
    tool = FunctionTool(
        add, description="Add two numbers.", global_imports=[ImportFromModule("math", ["pi"])]
    )
    model = tool.dump_component()
    assert model.provider == "agnext_broker.tools.FunctionTool"
    assert model.component_type == "tool"
    assert model.config["source_code"].startswith("def add(a: int, b: int) -> int:")
    with pytest.warns(UserWarning, match="trusted"):
        loaded = BaseTool.load_component(model)
    assert isinstance(loaded, FunctionTool)
    assert (loaded.name, loaded.description) == ("add", "Add two numbers.")
    assert await loaded.run_json({"a": 1, "b": 2}, CancellationToken()) == 3


class CounterArgs(BaseModel):
    step: int


class CounterResult(BaseModel):
    total: int


class CounterState(BaseModel):
    total: int = 0


class CounterTool(BaseToolWithState[CounterArgs, CounterResult, CounterState]):
    """A tool written against BaseTool's interface, as autogen-core users write them."""

    def __init__(self) -> None:
        super().__init__(CounterArgs, CounterResult, CounterState, "count", "Counts.")
        self.total = 0

    async def run(self, args: CounterArgs, cancellation_token: CancellationToken) -> CounterResult:
        self.total += args.step
        return CounterResult(total=self.total)

    def save_state(self) -> CounterState:
        return CounterState(total=self.total)

    def load_state(self, state: CounterState) -> None:
        self.total = state.total


async def test_a_tool_with_state_saves_and_loads_it_as_json() -> None:
    tool = CounterTool()
    assert tool.state_type() is CounterState
    result: Any = await tool.run_json({"step": 2}, CancellationToken(), call_id="call-1")
    assert result == CounterResult(total=2)
    saved = await tool.save_state_json()
    assert saved == {"total": 2}
    other = CounterTool()
    await other.load_state_json(saved)
    assert (await other.run_json({"step": 1}, CancellationToken())).total == 3

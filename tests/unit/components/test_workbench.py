"""StaticWorkbench: listing and calling tools, errors as results, overrides, state, config."""

import asyncio
import base64
from typing import Annotated

import pytest

from agnext_broker import CancellationToken
from agnext_broker.code_executor import ImportFromModule
from agnext_broker.models import Image
from agnext_broker.tools import (
    FunctionTool,
    ImageResultContent,
    StaticWorkbench,
    TextResultContent,
    ToolOverride,
    ToolResult,
    Workbench,
)
from tests.unit.components.test_tools import CounterTool

# The smallest PNG: a 1x1 transparent pixel.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def double(x: Annotated[int, "The number to double."]) -> int:
    return x * 2


def fail(reason: str) -> str:
    raise RuntimeError(f"it failed: {reason}")


def fail_twice() -> str:
    raise ExceptionGroup("both", [ValueError("first"), KeyError("second")])


def picture(caption: str) -> list[str | Image]:
    return [caption, Image(PIXEL)]


def tools() -> list[FunctionTool]:
    return [
        FunctionTool(double, description="Double a number."),
        FunctionTool(fail, description="Always fails."),
        FunctionTool(fail_twice, description="Fails twice."),
        FunctionTool(picture, description="Draws."),
    ]


async def test_list_and_call_tools() -> None:
    async with StaticWorkbench(tools()) as workbench:
        assert isinstance(workbench, Workbench)
        schemas = await workbench.list_tools()
        assert [schema["name"] for schema in schemas] == ["double", "fail", "fail_twice", "picture"]
        result = await workbench.call_tool("double", {"x": 21}, call_id="c1")
    assert result == ToolResult(name="double", result=[TextResultContent(content="42")])
    assert result.to_text() == "42"


async def test_failures_are_results_not_exceptions() -> None:
    workbench = StaticWorkbench(tools())
    missing = await workbench.call_tool("nope")
    assert missing.is_error
    assert missing.to_text() == "Tool nope not found."
    failed = await workbench.call_tool("fail", {"reason": "no luck"})
    assert (failed.is_error, failed.to_text()) == (True, "it failed: no luck")
    grouped = await workbench.call_tool("fail_twice")
    assert grouped.is_error
    assert grouped.to_text() == "first\n'second'"
    invalid = await workbench.call_tool("double", {"x": "many"})
    assert invalid.is_error
    assert "valid integer" in invalid.to_text()


async def test_images_are_image_results() -> None:
    result = await StaticWorkbench(tools()).call_tool("picture", {"caption": "a pixel"})
    assert not result.is_error
    assert result.result == [
        TextResultContent(content="a pixel"),
        ImageResultContent(content=Image(PIXEL)),
    ]
    assert result.to_text(replace_image="<image>") == "a pixel\n<image>"
    assert result.to_text().endswith(f"[Image: {base64.b64encode(PIXEL).decode()}]")
    assert ToolResult.model_validate_json(result.model_dump_json()) == result


async def test_overrides_rename_and_redescribe_tools() -> None:
    workbench = StaticWorkbench(
        tools(),
        tool_overrides={
            "double": ToolOverride(name="twice", description="Twice the number."),
            "fail": ToolOverride(description="Fails, on purpose."),
        },
    )
    schemas = {schema["name"]: schema for schema in await workbench.list_tools()}
    assert set(schemas) == {"twice", "fail", "fail_twice", "picture"}
    assert schemas["twice"].get("description") == "Twice the number."
    assert schemas["twice"].get("parameters") == tools()[0].schema.get("parameters")
    assert schemas["fail"].get("description") == "Fails, on purpose."
    assert tools()[0].schema["name"] == "double"
    renamed = await workbench.call_tool("twice", {"x": 4})
    assert (renamed.name, renamed.to_text(), renamed.is_error) == ("twice", "8", False)


def test_override_names_may_not_collide() -> None:
    with pytest.raises(ValueError, match="conflicts with existing tool name"):
        StaticWorkbench(tools(), tool_overrides={"double": ToolOverride(name="fail")})
    with pytest.raises(ValueError, match="used by multiple tools"):
        StaticWorkbench(
            tools(),
            tool_overrides={"double": ToolOverride(name="x"), "fail": ToolOverride(name="x")},
        )


async def test_cancellation_cancels_the_call() -> None:
    started = asyncio.Event()

    async def wait_forever() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    workbench = StaticWorkbench([FunctionTool(wait_forever, description="Waits.")])
    token = CancellationToken()
    call = asyncio.ensure_future(workbench.call_tool("wait_forever", cancellation_token=token))
    await started.wait()
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_state_of_the_tools_round_trips() -> None:
    counter = CounterTool()
    workbench = StaticWorkbench([counter])
    await workbench.call_tool("count", {"step": 5})
    state = await workbench.save_state()
    assert state == {"type": "StaticWorkbenchState", "tools": {"count": {"total": 5}}}
    restored = StaticWorkbench([CounterTool()])
    await restored.load_state(state)
    assert (await restored.call_tool("count", {"step": 1})).to_text() == '{"total": 6}'


async def test_configuration_round_trips() -> None:
    # The source needs Annotated when it is loaded: global_imports names it.
    imports = [ImportFromModule("typing", ["Annotated"])]
    workbench = StaticWorkbench(
        [FunctionTool(double, description="Double a number.", global_imports=imports)],
        tool_overrides={"double": ToolOverride(name="twice")},
    )
    model = workbench.dump_component()
    assert model.provider == "agnext_broker.tools.StaticWorkbench"
    with pytest.warns(UserWarning, match="trusted"):
        loaded = Workbench.load_component(model)
    assert [schema["name"] for schema in await loaded.list_tools()] == ["twice"]
    assert (await loaded.call_tool("twice", {"x": 3})).to_text() == "6"

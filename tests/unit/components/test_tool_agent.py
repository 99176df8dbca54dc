"""ToolAgent and tool_agent_caller_loop on the standalone runtime (the broker runtime's test is
tests/integration/test_broker_tool_agent.py)."""

from collections.abc import AsyncIterator

import pytest

from agnext_broker import AgentId, SingleThreadedAgentRuntime, UndeliverableException
from agnext_broker.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    ReplayChatCompletionClient,
    UserMessage,
)
from agnext_broker.tool_agent import (
    InvalidToolArgumentsException,
    ToolAgent,
    ToolException,
    ToolExecutionException,
    ToolNotFoundException,
    tool_agent_caller_loop,
)
from tests.unit.components.tool_agent_apps import (
    ASSISTANT_TYPE,
    TOOL_AGENT_TYPE,
    Answer,
    Ask,
    call,
    calls,
    register_assistant,
    register_tool_agent,
    tools,
)

TOOL_AGENT = AgentId(TOOL_AGENT_TYPE, "default")


@pytest.fixture
async def runtime() -> AsyncIterator[SingleThreadedAgentRuntime]:
    runtime = SingleThreadedAgentRuntime()
    await register_tool_agent(runtime)
    runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
        await runtime.close()


async def test_a_function_call_is_answered_with_its_result(
    runtime: SingleThreadedAgentRuntime,
) -> None:
    result = await runtime.send_message(call("c1", "add", '{"a": 2, "b": 40}'), TOOL_AGENT)
    assert result == FunctionExecutionResult(content="42", call_id="c1", is_error=False, name="add")
    agent = await runtime.try_get_underlying_agent_instance(TOOL_AGENT, ToolAgent)
    assert [tool.name for tool in agent.tools] == ["add", "fail"]


@pytest.mark.parametrize(
    ("function_call", "error", "content"),
    [
        (call("c2", "divide", "{}"), ToolNotFoundException, "Error: Tool not found: divide"),
        (call("c3", "add", "{not json"), InvalidToolArgumentsException, "Error: Invalid arguments"),
        (call("c4", "fail", '{"reason": "x"}'), ToolExecutionException, "Error: no luck: x"),
        (call("c5", "add", '{"a": "two"}'), ToolExecutionException, "validation error"),
    ],
)
async def test_failures_are_raised_to_the_caller_with_the_call(
    runtime: SingleThreadedAgentRuntime,
    function_call: object,
    error: type[ToolException],
    content: str,
) -> None:
    with pytest.raises(error) as raised:
        await runtime.send_message(function_call, TOOL_AGENT)
    assert isinstance(raised.value, Exception)
    assert raised.value.call_id == function_call.id  # type: ignore[attr-defined]
    assert raised.value.name == function_call.name  # type: ignore[attr-defined]
    assert content in raised.value.content
    assert str(raised.value) == raised.value.content


async def test_the_caller_loop_runs_tool_calls_until_the_model_answers(
    runtime: SingleThreadedAgentRuntime,
) -> None:
    client = ReplayChatCompletionClient(
        [
            calls(call("c1", "add", '{"a": 1, "b": 2}'), call("c2", "nope", "{}")),
            calls(call("c3", "fail", '{"reason": "twice"}')),
            "1 + 2 = 3",
        ]
    )
    question = [UserMessage(content="What is 1 + 2?", source="user")]
    generated = await tool_agent_caller_loop(
        runtime, TOOL_AGENT, client, question, tool_schema=tools(), caller_source="me"
    )
    assert generated == [
        AssistantMessage(
            content=[call("c1", "add", '{"a": 1, "b": 2}'), call("c2", "nope", "{}")], source="me"
        ),
        FunctionExecutionResultMessage(
            content=[
                FunctionExecutionResult(content="3", call_id="c1", is_error=False, name="add"),
                FunctionExecutionResult(
                    content="Error: Tool not found: nope", call_id="c2", is_error=True, name="nope"
                ),
            ]
        ),
        AssistantMessage(content=[call("c3", "fail", '{"reason": "twice"}')], source="me"),
        FunctionExecutionResultMessage(
            content=[
                FunctionExecutionResult(
                    content="Error: no luck: twice", call_id="c3", is_error=True, name="fail"
                )
            ]
        ),
        AssistantMessage(content="1 + 2 = 3", source="me"),
    ]
    # Each request holds the conversation so far, and the tools.
    assert [len(c["messages"]) for c in client.create_calls] == [1, 3, 5]
    assert client.create_calls[2]["messages"] == question + generated[:4]
    assert [tool.name for tool in client.create_calls[0]["tools"]] == ["add", "fail"]


async def test_a_text_answer_ends_the_loop_at_once(runtime: SingleThreadedAgentRuntime) -> None:
    client = ReplayChatCompletionClient(["no tools needed"])
    generated = await tool_agent_caller_loop(
        runtime,
        TOOL_AGENT,
        client,
        [UserMessage(content="hi", source="user")],
        [t.schema for t in tools()],
    )
    assert generated == [AssistantMessage(content="no tools needed", source="assistant")]
    assert client.create_calls[0]["tools"] == [t.schema for t in tools()]


async def test_an_unexpected_error_is_raised(runtime: SingleThreadedAgentRuntime) -> None:
    client = ReplayChatCompletionClient([calls(call("c1", "add", '{"a": 1, "b": 2}'))])
    with pytest.raises(UndeliverableException):
        await tool_agent_caller_loop(
            runtime,
            AgentId("no_such_type", "default"),
            client,
            [UserMessage(content="hi", source="user")],
            tools(),
        )


async def test_an_agent_runs_the_loop_from_its_handler(
    runtime: SingleThreadedAgentRuntime,
) -> None:
    client = ReplayChatCompletionClient(
        [calls(call("c1", "add", '{"a": 20, "b": 22}')), "It is 42."]
    )
    await register_assistant(runtime, client)
    answer = await runtime.send_message(
        Ask(question="20 + 22?"), AgentId(ASSISTANT_TYPE, "default")
    )
    assert isinstance(answer, Answer)
    assert [type(m).__name__ for m in answer.messages] == [
        "AssistantMessage",
        "FunctionExecutionResultMessage",
        "AssistantMessage",
    ]
    result = answer.messages[1]
    assert isinstance(result, FunctionExecutionResultMessage)
    assert result.content[0].content == "42"
    assert answer.messages[-1] == AssistantMessage(content="It is 42.", source="assistant")

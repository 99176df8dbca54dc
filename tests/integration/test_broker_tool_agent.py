"""The tool agent on the broker runtime: an assistant on one runtime runs the model's tool calls
on a tool agent hosted by another, and the tool agent's failures reach the model as results."""

import pytest

from agnext_broker import AgentId, RemoteHandlerError
from agnext_broker.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    ReplayChatCompletionClient,
)
from tests.integration.workers import (
    RuntimePool,
    forget_namespace,
    runtimes_fixture,  # noqa: F401
)
from tests.servers import AmqpCleanup
from tests.unit.components.tool_agent_apps import (
    ASSISTANT_TYPE,
    TOOL_AGENT_TYPE,
    Answer,
    Ask,
    call,
    calls,
    register_assistant,
    register_tool_agent,
)

pytestmark = pytest.mark.integration


async def test_tool_calls_run_on_a_tool_agent_of_another_runtime(
    runtimes: RuntimePool, amqp_cleanup: AmqpCleanup
) -> None:
    forget_namespace(amqp_cleanup, [TOOL_AGENT_TYPE, ASSISTANT_TYPE])
    client = ReplayChatCompletionClient(
        [
            calls(
                call("c1", "add", '{"a": 20, "b": 22}'),
                call("c2", "fail", '{"reason": "remote"}'),
                call("c3", "nope", "{}"),
            ),
            "It is 42.",
        ]
    )
    tool_host = await runtimes.start(register_tool_agent)
    assistant_host = await runtimes.start(lambda runtime: register_assistant(runtime, client))
    assert tool_host.settings.worker_id != assistant_host.settings.worker_id

    answer = await assistant_host.send_message(
        Ask(question="20 + 22?"), AgentId(ASSISTANT_TYPE, "alice")
    )
    assert isinstance(answer, Answer)
    assert answer.messages[1] == FunctionExecutionResultMessage(
        content=[
            FunctionExecutionResult(content="42", call_id="c1", is_error=False, name="add"),
            FunctionExecutionResult(
                content="Error: no luck: remote", call_id="c2", is_error=True, name="fail"
            ),
            FunctionExecutionResult(
                content="Error: Tool not found: nope", call_id="c3", is_error=True, name="nope"
            ),
        ]
    )
    assert answer.messages[-1] == AssistantMessage(content="It is 42.", source="assistant")
    # The model's second request carried the results, which crossed the broker as JSON.
    assert client.create_calls[1]["messages"][-1] == answer.messages[1]

    # Sent directly, a tool agent's failure arrives as the remote error, naming its type.
    with pytest.raises(RemoteHandlerError) as raised:
        await assistant_host.send_message(
            call("c4", "nope", "{}"), AgentId(TOOL_AGENT_TYPE, "alice")
        )
    assert raised.value.error_type.endswith(":ToolNotFoundException")
    assert str(raised.value).endswith("Error: Tool not found: nope")

"""An LLM agent's conversation survives its runtime: the model context lives in its state.

The agent keeps a ``BufferedChatCompletionContext`` and saves it with its state; a second runtime
(another worker id) re-activates the agent from Redis and carries on with the same window of the
conversation. The LLM message types cross the broker both ways as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import redis.asyncio
from pydantic import BaseModel

from agnext_broker import AgentId, AgentRuntime, FunctionCall, MessageContext, RoutedAgent, rpc
from agnext_broker.model_context import BufferedChatCompletionContext
from agnext_broker.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    UserMessage,
)
from tests.integration.workers import (
    RuntimePool,
    forget_namespace,
    runtimes_fixture,  # noqa: F401
    state_document,
)
from tests.servers import AmqpCleanup

pytestmark = pytest.mark.integration

CHAT_TYPE = "chat"
BUFFER_SIZE = 4


class GetTranscript(BaseModel):
    pass


class Transcript(BaseModel):
    messages: list[LLMMessage]


class ChatAgent(RoutedAgent):
    """Answers each user message with a tool call and its result, as a model would, and keeps
    the conversation in a buffered context."""

    def __init__(self) -> None:
        super().__init__("a chat agent with a buffered model context")
        self._context = BufferedChatCompletionContext(buffer_size=BUFFER_SIZE)

    @rpc
    async def on_user_message(self, message: UserMessage, ctx: MessageContext) -> AssistantMessage:
        await self._context.add_message(message)
        turn = len(await self._context.get_messages())
        call = FunctionCall(id=f"call-{turn}", arguments=json.dumps({"turn": turn}), name="echo")
        answer = AssistantMessage(content=[call], source=self.id.type)
        await self._context.add_message(answer)
        await self._context.add_message(
            FunctionExecutionResultMessage(
                content=[
                    FunctionExecutionResult(
                        content=str(message.content), name="echo", call_id=call.id
                    )
                ]
            )
        )
        return answer

    @rpc
    async def on_get_transcript(self, message: GetTranscript, ctx: MessageContext) -> Transcript:
        return Transcript(messages=await self._context.get_messages())

    async def save_state(self) -> Mapping[str, Any]:
        return {"context": await self._context.save_state()}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        await self._context.load_state(state["context"])


async def register_chat(runtime: AgentRuntime) -> None:
    await ChatAgent.register(runtime, CHAT_TYPE, ChatAgent)


async def test_a_buffered_model_context_resumes_on_another_runtime(
    namespace: str,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    amqp_cleanup: AmqpCleanup,
) -> None:
    forget_namespace(amqp_cleanup, [CHAT_TYPE])
    agent = AgentId(CHAT_TYPE, "alice")

    first = await runtimes.start(register_chat)
    answer = await first.send_message(UserMessage(content="hello", source="alice"), agent)
    assert isinstance(answer, AssistantMessage)
    assert answer.content == [FunctionCall(id="call-1", arguments='{"turn": 1}', name="echo")]
    await first.send_message(UserMessage(content="how are you?", source="alice"), agent)
    before = await first.send_message(GetTranscript(), agent)
    await runtimes.stop(first)

    document = await state_document(redis_client, namespace, CHAT_TYPE, "alice")
    assert document is not None
    saved_types = [m["type"] for m in document["state"]["context"]["messages"]]
    assert saved_types == ["UserMessage", "AssistantMessage", "FunctionExecutionResultMessage"] * 2

    second = await runtimes.start(register_chat)
    assert second.settings.worker_id != first.settings.worker_id
    resumed = await second.send_message(GetTranscript(), agent)
    assert resumed == before
    # the last four of six messages, less the function result that leads them
    assert [type(m) for m in resumed.messages] == [
        UserMessage,
        AssistantMessage,
        FunctionExecutionResultMessage,
    ]
    assert resumed.messages[0] == UserMessage(content="how are you?", source="alice")

    await second.send_message(UserMessage(content="bye", source="alice"), agent)
    latest = await second.send_message(GetTranscript(), agent)
    assert latest.messages[0] == UserMessage(content="bye", source="alice")

"""Type-checked (by mypy --strict), never run: the public API used the way users use it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agnext_broker import (
    AgentId,
    AgentRuntime,
    CancellationToken,
    ClosureAgent,
    ClosureContext,
    DefaultTopicId,
    MessageContext,
    RoutedAgent,
    SingleThreadedAgentRuntime,
    TopicId,
    TypeSubscription,
    default_subscription,
    event,
    message_handler,
    rpc,
    type_subscription,
    wire_name,
)


@dataclass
class Question:
    text: str


@wire_name("typing.Answer")
class Answer(BaseModel):
    text: str


def has_text(question: Question, ctx: MessageContext) -> bool:
    return bool(question.text)


@default_subscription
@type_subscription("questions")
class Oracle(RoutedAgent):
    concurrent_handling = False

    def __init__(self) -> None:
        super().__init__("answers questions")
        self.asked = 0

    @rpc
    async def answer(self, question: Question, ctx: MessageContext) -> Answer:
        self.asked += 1
        return Answer(text=question.text.upper())

    @event(match=has_text)
    async def noted(self, question: Question, ctx: MessageContext) -> None:
        await self.publish_message(Answer(text="noted"), DefaultTopicId())

    @message_handler(strict=False)
    async def either(self, message: Answer | Question, ctx: MessageContext) -> None:
        return None

    async def save_state(self) -> Mapping[str, Any]:
        return {"asked": self.asked}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.asked = int(state["asked"])


async def collect(context: ClosureContext, message: Answer, ctx: MessageContext) -> None:
    assert context.id.type == "collector"


async def usage() -> str:
    runtime: AgentRuntime = SingleThreadedAgentRuntime()
    await Oracle.register(runtime, "oracle", Oracle)
    await ClosureAgent.register_closure(
        runtime,
        "collector",
        collect,
        subscriptions=lambda: [TypeSubscription("answers", "collector")],
    )
    token = CancellationToken()
    answer: Answer = await runtime.send_message(
        Question("why?"), AgentId("oracle", "default"), cancellation_token=token
    )
    await runtime.publish_message(Question("hi"), TopicId("questions", "k"))
    oracle = await runtime.try_get_underlying_agent_instance(AgentId("oracle", "default"), Oracle)
    state: Mapping[str, Any] = await runtime.save_state()
    await runtime.load_state(state)
    return answer.text + str(oracle.asked)


async def lifecycle() -> None:
    runtime = SingleThreadedAgentRuntime(ignore_unhandled_exceptions=False)
    runtime.start()
    await runtime.stop_when_idle()
    runtime.start()
    await runtime.stop_when(lambda: True)
    await runtime.close()

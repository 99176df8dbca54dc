"""Type-checked (by mypy --strict), never run: the public API used the way users use it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agnext_broker import (
    AgentId,
    AgentRuntime,
    AgnextError,
    BrokerAgentRuntime,
    BrokerSettings,
    CancellationToken,
    ClosureAgent,
    ClosureContext,
    DefaultTopicId,
    MessageContext,
    MessageRejectedError,
    PublishTimeoutError,
    ResponseExpiredError,
    RoutedAgent,
    RpcTimeoutError,
    ServiceUnavailableError,
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


async def broker() -> None:
    settings = BrokerSettings.from_env(namespace="apps", rpc_timeout=5.0)
    runtime: AgentRuntime = BrokerAgentRuntime(settings.with_changes(publish_timeout=5.0))
    broker_runtime = BrokerAgentRuntime(amqp_url="amqp://localhost/", redis_url="redis://")
    await broker_runtime.start()
    await Oracle.register(runtime, "oracle", Oracle)
    try:
        await runtime.send_message(Question("why?"), AgentId("oracle", "default"))
    except RpcTimeoutError as timed_out:
        reason: TimeoutError = timed_out
        assert isinstance(reason, AgnextError)
    except (ServiceUnavailableError, MessageRejectedError, ResponseExpiredError) as e:
        failure: AgnextError = e
        assert failure
    try:
        await runtime.publish_message(Question("hi"), TopicId("questions", "k"))
    except PublishTimeoutError as e:
        not_confirmed: TimeoutError = e
        assert not_confirmed
    await broker_runtime.stop_when_idle()
    await broker_runtime.close()

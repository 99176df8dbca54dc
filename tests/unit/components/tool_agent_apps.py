"""A tool agent and an assistant that drives it with a model, for the tool agent's tests on the
standalone runtime and on the broker runtime."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel

from agnext_broker import AgentId, AgentRuntime, FunctionCall, MessageContext, RoutedAgent, rpc
from agnext_broker.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    RequestUsage,
    UserMessage,
)
from agnext_broker.tool_agent import ToolAgent, tool_agent_caller_loop
from agnext_broker.tools import FunctionTool, Tool

TOOL_AGENT_TYPE = "tools"
ASSISTANT_TYPE = "assistant"


def add(a: Annotated[int, "first"], b: Annotated[int, "second"]) -> int:
    return a + b


def fail(reason: str) -> str:
    raise RuntimeError(f"no luck: {reason}")


def tools() -> list[Tool]:
    return [
        FunctionTool(add, description="Add two numbers."),
        FunctionTool(fail, description="Always fails."),
    ]


def call(call_id: str, name: str, arguments: str) -> FunctionCall:
    return FunctionCall(id=call_id, arguments=arguments, name=name)


def calls(*function_calls: FunctionCall) -> CreateResult:
    """A model's answer that asks for these function calls."""
    return CreateResult(
        finish_reason="function_calls",
        content=list(function_calls),
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


class Ask(BaseModel):
    question: str


class Answer(BaseModel):
    messages: list[LLMMessage]


class Assistant(RoutedAgent):
    """Answers a question with the model, running the model's tool calls on the tool agent of
    its own key."""

    def __init__(self, model_client: ChatCompletionClient) -> None:
        super().__init__("an assistant that uses tools")
        self._model_client = model_client

    @rpc
    async def on_ask(self, message: Ask, ctx: MessageContext) -> Answer:
        generated = await tool_agent_caller_loop(
            self,
            tool_agent_id=AgentId(TOOL_AGENT_TYPE, self.id.key),
            model_client=self._model_client,
            input_messages=[UserMessage(content=message.question, source="user")],
            tool_schema=tools(),
            cancellation_token=ctx.cancellation_token,
        )
        return Answer(messages=generated)


async def register_tool_agent(runtime: AgentRuntime) -> None:
    await ToolAgent.register(runtime, TOOL_AGENT_TYPE, lambda: ToolAgent("runs tools", tools()))


async def register_assistant(runtime: AgentRuntime, model_client: ChatCompletionClient) -> None:
    await Assistant.register(runtime, ASSISTANT_TYPE, lambda: Assistant(model_client))

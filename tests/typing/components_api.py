"""Type-checked (by mypy --strict), never run: models, model contexts, memory and component
configuration used the way autogen-core users use them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agnext_broker import (
    ComponentLoader,
    ComponentModel,
    FunctionCall,
    Image,
    MessageContext,
    RoutedAgent,
    rpc,
)
from agnext_broker.memory import ListMemory, MemoryContent, MemoryMimeType
from agnext_broker.model_context import (
    BufferedChatCompletionContext,
    ChatCompletionContext,
    TokenLimitedChatCompletionContext,
)
from agnext_broker.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    SystemMessage,
    UserMessage,
)


class Assistant(RoutedAgent):
    def __init__(self, model_client: ChatCompletionClient) -> None:
        super().__init__("an assistant")
        self._model_client = model_client
        self._context: ChatCompletionContext = BufferedChatCompletionContext(buffer_size=10)
        self._memory = ListMemory(name="facts")

    @rpc
    async def on_user_message(self, message: UserMessage, ctx: MessageContext) -> AssistantMessage:
        await self._context.add_message(message)
        await self._memory.update_context(self._context)
        history: list[LLMMessage] = [SystemMessage(content="be brief")]
        history.extend(await self._context.get_messages())
        result: CreateResult = await self._model_client.create(
            history, cancellation_token=ctx.cancellation_token
        )
        calls: list[FunctionCall] | None = (
            result.content if isinstance(result.content, list) else None
        )
        answer = AssistantMessage(content=calls or str(result.content), source=self.id.type)
        await self._context.add_message(answer)
        return answer

    async def save_state(self) -> Mapping[str, Any]:
        return {
            "context": await self._context.save_state(),
            "memory": await self._memory.save_state(),
        }

    async def load_state(self, state: Mapping[str, Any]) -> None:
        await self._context.load_state(state["context"])
        await self._memory.load_state(state["memory"])


async def configuration(client: ChatCompletionClient) -> None:
    context = TokenLimitedChatCompletionContext(client, token_limit=1000)
    dumped: ComponentModel = context.dump_component()
    again: ChatCompletionContext = ChatCompletionContext.load_component(dumped)
    also: ListMemory = ComponentLoader.load_component(dumped.model_dump(), ListMemory)
    await again.clear()
    await also.add(MemoryContent(content=Image(b"..."), mime_type=MemoryMimeType.IMAGE))

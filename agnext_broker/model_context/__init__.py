"""What an agent remembers of its conversation with a model (autogen-core's
``autogen_core.model_context``)."""

from ..components.model_context._buffered import BufferedChatCompletionContext
from ..components.model_context._chat_completion_context import (
    ChatCompletionContext,
    ChatCompletionContextState,
)
from ..components.model_context._head_and_tail import HeadAndTailChatCompletionContext
from ..components.model_context._token_limited import TokenLimitedChatCompletionContext
from ..components.model_context._unbounded import UnboundedChatCompletionContext

__all__ = [
    "BufferedChatCompletionContext",
    "ChatCompletionContext",
    "ChatCompletionContextState",
    "HeadAndTailChatCompletionContext",
    "TokenLimitedChatCompletionContext",
    "UnboundedChatCompletionContext",
]

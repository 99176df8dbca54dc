"""Model clients and the messages they exchange (autogen-core's ``autogen_core.models``).

``FunctionCall`` and ``Image``, top-level names in autogen-core, are also importable here, and
so is ``ReplayChatCompletionClient`` (autogen-ext's ``autogen_ext.models.replay``). The OpenAI
clients are in :mod:`agnext_broker.models.openai` (the ``openai`` extra).
"""

from ..components.models._function_call import FunctionCall
from ..components.models._image import Image
from ..components.models._model_client import ChatCompletionClient
from ..components.models._model_info import (
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    validate_model_info,
)
from ..components.models._replay import ReplayChatCompletionClient
from ..components.models._types import (
    AssistantMessage,
    ChatCompletionTokenLogprob,
    CreateResult,
    FinishReasons,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    RequestUsage,
    SystemMessage,
    TopLogprob,
    UserMessage,
)

__all__ = [
    "AssistantMessage",
    "ChatCompletionClient",
    "ChatCompletionTokenLogprob",
    "CreateResult",
    "FinishReasons",
    "FunctionCall",
    "FunctionExecutionResult",
    "FunctionExecutionResultMessage",
    "Image",
    "LLMMessage",
    "ModelCapabilities",
    "ModelFamily",
    "ModelInfo",
    "ReplayChatCompletionClient",
    "RequestUsage",
    "SystemMessage",
    "TopLogprob",
    "UserMessage",
    "validate_model_info",
]

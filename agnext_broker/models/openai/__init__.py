"""Model clients of the OpenAI chat completions API (autogen-ext's ``autogen_ext.models.openai``):
OpenAI, Azure OpenAI, and servers that speak the same API (vLLM, Ollama, llama.cpp).

Needs the ``openai`` extra: ``pip install 'agnext-broker[openai]'``.
"""

from ...components.models.openai._base_client import BaseOpenAIChatCompletionClient
from ...components.models.openai._clients import (
    AzureOpenAIChatCompletionClient,
    OpenAIChatCompletionClient,
)
from ...components.models.openai._config import (
    AzureOpenAIClientConfigurationConfigModel,
    BaseOpenAIClientConfigurationConfigModel,
    OpenAIClientConfigurationConfigModel,
)

__all__ = [
    "AzureOpenAIChatCompletionClient",
    "AzureOpenAIClientConfigurationConfigModel",
    "BaseOpenAIChatCompletionClient",
    "BaseOpenAIClientConfigurationConfigModel",
    "OpenAIChatCompletionClient",
    "OpenAIClientConfigurationConfigModel",
]

"""The component configurations of the OpenAI clients, as autogen-ext names them.

The request arguments a client was made with (``temperature``, ``max_tokens``, ``seed``, ...)
are kept as extra fields, so that any argument the API accepts round-trips. The API key is a
``SecretStr``: a dumped configuration written as JSON shows ``**********``, not the key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr


class BaseOpenAIClientConfigurationConfigModel(BaseModel):
    """What both clients take; the API's request arguments go in as extra fields."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    api_key: SecretStr | None = None
    timeout: float | None = None
    max_retries: int | None = None
    default_headers: dict[str, str] | None = None
    # ModelInfo and ModelCapabilities are typing.TypedDicts, which pydantic refuses as fields on
    # Python 3.11: their dicts go in as they are, and the client checks them.
    model_capabilities: dict[str, Any] | None = None
    model_info: dict[str, Any] | None = None
    add_name_prefixes: bool | None = None
    include_name_in_message: bool | None = None


class OpenAIClientConfigurationConfigModel(BaseOpenAIClientConfigurationConfigModel):
    """The configuration of an ``OpenAIChatCompletionClient``."""

    organization: str | None = None
    base_url: str | None = None


class AzureOpenAIClientConfigurationConfigModel(BaseOpenAIClientConfigurationConfigModel):
    """The configuration of an ``AzureOpenAIChatCompletionClient`` (no token provider: a callable
    cannot be written down; pass ``azure_ad_token`` or an API key instead)."""

    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    azure_ad_token: SecretStr | None = None

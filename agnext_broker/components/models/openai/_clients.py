"""OpenAIChatCompletionClient and AzureOpenAIChatCompletionClient: where the client's URL, key and
model come from, and their component configurations."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self

from openai import AsyncAzureOpenAI, AsyncOpenAI
from pydantic import BaseModel, SecretStr

from ..._component_config import Component
from .._model_info import ModelCapabilities, ModelInfo
from . import _model_table
from ._base_client import BaseOpenAIChatCompletionClient
from ._config import AzureOpenAIClientConfigurationConfigModel, OpenAIClientConfigurationConfigModel

_MODEL_VARIABLE = "OPENAI_MODEL"
_BASE_URL_VARIABLE = "OPENAI_BASE_URL"


def _client_options(
    timeout: float | None, max_retries: int | None, default_headers: Mapping[str, str] | None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if timeout is not None:
        options["timeout"] = timeout
    if max_retries is not None:
        options["max_retries"] = max_retries
    if default_headers is not None:
        options["default_headers"] = dict(default_headers)
    return options


def _given_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments that are not None: those the component configuration records."""
    return {key: value for key, value in arguments.items() if value is not None}


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _config_arguments(config: BaseModel, secrets: tuple[str, ...]) -> dict[str, Any]:
    arguments: dict[str, Any] = config.model_dump(exclude_none=True)
    for name in secrets:
        if name in arguments:
            arguments[name] = _secret(getattr(config, name))
    return arguments


class OpenAIChatCompletionClient(
    BaseOpenAIChatCompletionClient, Component[OpenAIClientConfigurationConfigModel]
):
    """A model client of OpenAI's chat completions API, or of any server that speaks it: vLLM,
    Ollama, llama.cpp's server, LiteLLM, Gemini's and Anthropic's compatible endpoints.

    Needs the ``openai`` extra: ``pip install 'agnext-broker[openai]'``.

    Example::

        client = OpenAIChatCompletionClient(
            model="llama3.2",
            base_url="http://localhost:11434/v1",  # Ollama
            api_key="ollama",
            model_info=ModelInfo(vision=False, function_calling=True, json_output=True,
                                 family=ModelFamily.UNKNOWN, structured_output=True),
        )
        result = await client.create([UserMessage(content="Hello", source="user")])

    Args:
        model: the model's name; ``OPENAI_MODEL`` when not given.
        api_key: ``OPENAI_API_KEY`` when not given (the ``openai`` client reads it). Local
            servers that check no key still need one: any text does.
        base_url: the API's URL, e.g. ``http://localhost:8000/v1``; ``OPENAI_BASE_URL`` when not
            given, else OpenAI's (or Gemini's, Anthropic's or Llama's compatible endpoint for
            their model names, with ``GEMINI_API_KEY``, ``ANTHROPIC_API_KEY``, ``LLAMA_API_KEY``).
        organization: the OpenAI organization.
        timeout: seconds per HTTP request (the ``openai`` client's default otherwise).
        max_retries: how often a request that failed with 408, 409, 429, a 5xx status or a
            lost connection is sent again, with exponential backoff (0.5 s doubling, at most
            8 s, with jitter) or after the server's ``Retry-After``; the ``openai`` client's
            default is 2.
        default_headers: HTTP headers sent with every request.
        model_info: what the model supports; required for a model name the client does not
            know (every model outside OpenAI's, Gemini's, Anthropic's and Llama's names).
        add_name_prefixes: start each user message with ``"<source> said:\\n"``.
        include_name_in_message: send a message's source as its ``name`` (turn off for servers
            that refuse the field).
        **create_args: request arguments sent with every request (``temperature``,
            ``max_tokens``, ``seed``, ``parallel_tool_calls``, ``extra_body``, ...).
    """

    component_type = "model"
    component_config_schema = OpenAIClientConfigurationConfigModel
    component_provider_override = "agnext_broker.models.openai.OpenAIChatCompletionClient"

    def __init__(
        self,
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        model_capabilities: ModelCapabilities | None = None,
        model_info: ModelInfo | None = None,
        add_name_prefixes: bool = False,
        include_name_in_message: bool = True,
        **create_args: Any,
    ) -> None:
        self._arguments = _given_arguments(
            {
                "model": model,
                "api_key": api_key,
                "base_url": base_url,
                "organization": organization,
                "timeout": timeout,
                "max_retries": max_retries,
                "default_headers": default_headers,
                "model_capabilities": model_capabilities,
                "model_info": model_info,
                "add_name_prefixes": add_name_prefixes,
                "include_name_in_message": include_name_in_message,
                **create_args,
            }
        )
        model = model or os.environ.get(_MODEL_VARIABLE)
        if not model:
            raise ValueError(f"No model named: pass model= or set {_MODEL_VARIABLE}.")
        self._arguments["model"] = model
        if base_url is None and not os.environ.get(_BASE_URL_VARIABLE):
            for prefix, (provider_url, key_variable) in _model_table.PROVIDER_DEFAULTS.items():
                if model.startswith(prefix):
                    base_url = provider_url
                    api_key = api_key or os.environ.get(key_variable)
        client = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            **_client_options(timeout, max_retries, default_headers),
        )
        super().__init__(
            client,
            create_args={**create_args, "model": model},
            model_capabilities=model_capabilities,
            model_info=model_info,
            add_name_prefixes=add_name_prefixes,
            include_name_in_message=include_name_in_message,
        )

    def _to_config(self) -> OpenAIClientConfigurationConfigModel:
        return OpenAIClientConfigurationConfigModel(**self._arguments)

    @classmethod
    def _from_config(cls, config: OpenAIClientConfigurationConfigModel) -> Self:
        return cls(**_config_arguments(config, ("api_key",)))


class AzureOpenAIChatCompletionClient(
    BaseOpenAIChatCompletionClient, Component[AzureOpenAIClientConfigurationConfigModel]
):
    """A model client of an Azure OpenAI deployment, through the ``openai`` package's Azure client.

    Example::

        client = AzureOpenAIChatCompletionClient(
            azure_endpoint="https://example.openai.azure.com/",
            azure_deployment="gpt-4o",
            api_version="2024-06-01",
            model="gpt-4o",
            api_key="...",  # or azure_ad_token / azure_ad_token_provider
        )

    ``azure_endpoint``, ``api_version`` and ``api_key`` default to ``AZURE_OPENAI_ENDPOINT``,
    ``OPENAI_API_VERSION`` and ``AZURE_OPENAI_API_KEY`` (read by the ``openai`` client);
    ``model`` to ``OPENAI_MODEL``, then to the deployment's name. The other arguments are
    :class:`OpenAIChatCompletionClient`'s.
    """

    component_type = "model"
    component_config_schema = AzureOpenAIClientConfigurationConfigModel
    component_provider_override = "agnext_broker.models.openai.AzureOpenAIChatCompletionClient"

    def __init__(
        self,
        *,
        model: str | None = None,
        azure_endpoint: str | None = None,
        azure_deployment: str | None = None,
        api_version: str | None = None,
        api_key: str | None = None,
        azure_ad_token: str | None = None,
        azure_ad_token_provider: Callable[[], str | Awaitable[str]] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        model_capabilities: ModelCapabilities | None = None,
        model_info: ModelInfo | None = None,
        add_name_prefixes: bool = False,
        include_name_in_message: bool = True,
        **create_args: Any,
    ) -> None:
        self._token_provider = azure_ad_token_provider
        self._arguments = _given_arguments(
            {
                "model": model,
                "azure_endpoint": azure_endpoint,
                "azure_deployment": azure_deployment,
                "api_version": api_version,
                "api_key": api_key,
                "azure_ad_token": azure_ad_token,
                "timeout": timeout,
                "max_retries": max_retries,
                "default_headers": default_headers,
                "model_capabilities": model_capabilities,
                "model_info": model_info,
                "add_name_prefixes": add_name_prefixes,
                "include_name_in_message": include_name_in_message,
                **create_args,
            }
        )
        model = model or os.environ.get(_MODEL_VARIABLE) or azure_deployment
        if not model:
            raise ValueError(
                f"No model named: pass model= (or azure_deployment=) or set {_MODEL_VARIABLE}."
            )
        self._arguments["model"] = model
        # What is None here the Azure client reads from its variables (AZURE_OPENAI_ENDPOINT,
        # OPENAI_API_VERSION, AZURE_OPENAI_API_KEY); its overloads want one way of naming the
        # endpoint, so the arguments go in as one mapping.
        azure_options: dict[str, Any] = {
            "azure_endpoint": azure_endpoint,
            "azure_deployment": azure_deployment,
            "api_version": api_version,
            "api_key": api_key,
            "azure_ad_token": azure_ad_token,
            "azure_ad_token_provider": azure_ad_token_provider,
            **_client_options(timeout, max_retries, default_headers),
        }
        client = AsyncAzureOpenAI(**azure_options)
        if model_info is None and model_capabilities is None:
            # Azure names GPT-3.5 models "gpt-35-..."
            model_info = _model_table.known_model_info(model.replace("gpt-35", "gpt-3.5"))
        super().__init__(
            client,
            create_args={**create_args, "model": model},
            model_capabilities=model_capabilities,
            model_info=model_info,
            add_name_prefixes=add_name_prefixes,
            include_name_in_message=include_name_in_message,
        )

    def _to_config(self) -> AzureOpenAIClientConfigurationConfigModel:
        if self._token_provider is not None:
            raise ValueError(
                "A client with an azure_ad_token_provider cannot be dumped: the provider is code."
            )
        return AzureOpenAIClientConfigurationConfigModel(**self._arguments)

    @classmethod
    def _from_config(cls, config: AzureOpenAIClientConfigurationConfigModel) -> Self:
        return cls(**_config_arguments(config, ("api_key", "azure_ad_token")))

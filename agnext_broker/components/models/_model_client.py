"""The interface every model client implements, as in autogen-core."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel

from ...base import CancellationToken
from .._component_config import ComponentBase
from ._model_info import (
    ModelCapabilities,
    ModelInfo,
    capabilities_of_model_info,
    model_info_of_capabilities,
)
from ._types import CreateResult, LLMMessage, RequestUsage

ToolChoice = Literal["auto", "required", "none"]
"""Or a tool, to require that one."""

# Read-only stand-ins for autogen-core's `= []` and `= {}` defaults: equal for callers, and
# never shared mutable state between calls.
_NO_TOOLS: Sequence[Any] = ()
_NO_EXTRA_ARGS: Mapping[str, Any] = MappingProxyType({})


class ChatCompletionClient(ComponentBase[BaseModel], ABC):
    """A client of a chat completion model.

    ``tools`` holds ``agnext_broker.tools`` ``Tool`` objects or ``ToolSchema`` dicts; it is typed
    ``Sequence[Any]`` here so that this module does not depend on the tools package.
    """

    @abstractmethod
    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Any] = _NO_TOOLS,
        tool_choice: Any | ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = _NO_EXTRA_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        """One completion of ``messages``.

        Args:
            messages: the conversation so far.
            tools: the tools the model may call.
            tool_choice: ``"auto"`` (the model decides), ``"required"`` (it must call one),
                ``"none"``, or one of ``tools`` that it must call.
            json_output: ``True`` for JSON mode, a pydantic model class for structured output
                of that schema, ``None`` for the client's default.
            extra_create_args: passed on to the underlying API.
            cancellation_token: cancels the request.
        """

    @abstractmethod
    def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Any] = _NO_TOOLS,
        tool_choice: Any | ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = _NO_EXTRA_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Like :meth:`create`, as text chunks ending with the :class:`CreateResult`."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def actual_usage(self) -> RequestUsage: ...

    @abstractmethod
    def total_usage(self) -> RequestUsage: ...

    @abstractmethod
    def count_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = _NO_TOOLS
    ) -> int: ...

    @abstractmethod
    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Any] = _NO_TOOLS
    ) -> int: ...

    @property
    @abstractmethod
    def capabilities(self) -> ModelCapabilities:
        """Deprecated in autogen-core: implement :attr:`model_info`."""

    @property
    @abstractmethod
    def model_info(self) -> ModelInfo:
        """What the model supports. The base implementation falls back to
        :attr:`capabilities` with an unknown family, with a warning, as autogen-core does."""
        warnings.warn(
            "Model client in use does not implement model_info property. Falling back to "
            "capabilities property, which is deprecated.",
            stacklevel=2,
        )
        return model_info_of_capabilities(self.capabilities)


class FixedModelInfoClient(ChatCompletionClient, ABC):
    """A ChatCompletionClient whose ModelInfo is set once, in ``self._model_info``: it gives
    :attr:`model_info` and the deprecated :attr:`capabilities` from it."""

    _model_info: ModelInfo

    @property
    def capabilities(self) -> ModelCapabilities:
        warnings.warn(
            "capabilities is deprecated, use model_info instead", DeprecationWarning, stacklevel=2
        )
        return capabilities_of_model_info(self._model_info)

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

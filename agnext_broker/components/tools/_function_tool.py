"""FunctionTool: a typed Python function as a tool, its schema derived from its signature."""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Self

from pydantic import BaseModel

from ...base import CancellationToken
from .._component_config import Component
from ..code_executor._func_with_reqs import Import, import_to_str, to_code
from ._base import BaseTool
from ._signature import (
    CANCELLATION_TOKEN_PARAMETER,
    args_base_model_from_signature,
    get_typed_signature,
)


class FunctionToolConfig(BaseModel):
    """A function tool as configuration: its source code, and the imports that code needs."""

    source_code: str
    name: str
    description: str
    global_imports: Sequence[Import]
    has_cancellation_support: bool


class FunctionTool(BaseTool[BaseModel, BaseModel], Component[FunctionToolConfig]):
    """Wrap a function, sync or async, as a tool.

    Every parameter needs a type annotation; ``Annotated[T, "description"]`` describes it to
    the model, and a default makes it optional. A parameter named ``cancellation_token`` is not
    part of the schema: the tool passes its :class:`CancellationToken`. A sync function runs in
    a worker thread.

    Example::

        async def get_stock_price(
            ticker: str, date: Annotated[str, "Date in YYYY/MM/DD"]
        ) -> float:
            return 123.4

        tool = FunctionTool(get_stock_price, description="Fetch a stock's price on a date.")
        price = await tool.run_json({"ticker": "AAPL", "date": "2021/01/01"}, CancellationToken())

    Args:
        func: the function.
        description: what it does and when to call it, for the model.
        name: the tool's name (default: the function's).
        global_imports: imports its source needs when loaded from a configuration.
        strict: make the schema fit OpenAI's strict mode (every parameter required).
    """

    component_provider_override = "agnext_broker.tools.FunctionTool"
    component_config_schema = FunctionToolConfig

    def __init__(
        self,
        func: Callable[..., Any],
        description: str,
        name: str | None = None,
        global_imports: Sequence[Import] = (),
        strict: bool = False,
    ) -> None:
        self._func = func
        self._global_imports = list(global_imports)
        self._signature = get_typed_signature(func)
        target = func.func if isinstance(func, functools.partial) else func
        func_name: str = name or getattr(target, "__name__", None) or type(target).__name__
        args_model = args_base_model_from_signature(func_name + "args", self._signature)
        self._has_cancellation_support = CANCELLATION_TOKEN_PARAMETER in self._signature.parameters
        super().__init__(
            args_model, self._signature.return_annotation, func_name, description, strict
        )

    async def run(self, args: BaseModel, cancellation_token: CancellationToken) -> Any:
        # Attributes rather than model_dump(): nested models reach the function as models.
        kwargs = {
            name: getattr(args, name)
            for name in self._signature.parameters
            if name != CANCELLATION_TOKEN_PARAMETER and hasattr(args, name)
        }
        if self._has_cancellation_support:
            kwargs[CANCELLATION_TOKEN_PARAMETER] = cancellation_token
        if _is_async(self._func):
            return await self._func(**kwargs)
        future = asyncio.ensure_future(asyncio.to_thread(self._func, **kwargs))
        cancellation_token.link_future(future)
        return await future

    def _to_config(self) -> FunctionToolConfig:
        return FunctionToolConfig(
            source_code=to_code(self._func),
            global_imports=self._global_imports,
            name=self.name,
            description=self.description,
            has_cancellation_support=self._has_cancellation_support,
        )

    @classmethod
    def _from_config(cls, config: FunctionToolConfig) -> Self:
        warnings.warn(
            "Loading a FunctionTool from config executes its imports and function source: "
            "load only configurations from trusted sources.",
            UserWarning,
            stacklevel=2,
        )
        namespace: dict[str, Any] = {}
        for im in config.global_imports:
            statement = import_to_str(im)
            try:
                exec(statement, namespace)
            except ImportError as e:
                raise ImportError(f"Failed to import {statement}: {e}") from e
        try:
            definitions = [
                node.name
                for node in ast.parse(config.source_code).body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            exec(config.source_code, namespace)
        except Exception as e:
            raise ValueError(f"Could not compile and load function: {e}") from e
        if not definitions or not callable(namespace.get(definitions[0])):
            raise ValueError("The source code defines no function.")
        return cls(namespace[definitions[0]], config.description, config.name)


def _is_async(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 (a callable object's async __call__)
    )

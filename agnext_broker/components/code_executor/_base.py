"""The code executor interface and the values it takes and returns, as in autogen-core."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pydantic import BaseModel

from ...base import CancellationToken
from .._component_config import ComponentBase


@dataclass
class CodeBlock:
    """A block of code to run, in a language the executor knows (``python``, ``sh``, ...)."""

    code: str
    language: str


@dataclass
class CodeResult:
    """What running code blocks gave: the exit code of the last block that ran, and its output."""

    exit_code: int
    output: str


class CodeExecutor(ABC, ComponentBase[BaseModel]):
    """Runs code blocks and returns their result.

    Use an executor as an async context manager (``async with executor: ...``): entering calls
    :meth:`start`, leaving calls :meth:`stop`, which releases what it holds (a temporary work
    directory, a container).
    """

    component_type = "code_executor"

    @abstractmethod
    async def execute_code_blocks(
        self, code_blocks: list[CodeBlock], cancellation_token: CancellationToken
    ) -> CodeResult:
        """Run ``code_blocks`` in order, stopping at the first that fails.

        Raises:
            ValueError: errors in the input.
            asyncio.TimeoutError: the code ran out of time (executors may report it in the
                result instead, as the command line executors do).
            asyncio.CancelledError: ``cancellation_token`` was cancelled.
        """

    @abstractmethod
    async def start(self) -> None:
        """Acquire what the executor needs to run code."""

    @abstractmethod
    async def stop(self) -> None:
        """Release what the executor holds."""

    @abstractmethod
    async def restart(self) -> None:
        """Bring the executor back to a fresh state (called when an agent is reset)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.stop()
        return None

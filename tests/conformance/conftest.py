"""Fixtures of the conformance suite.

Tests take ``runtime`` (a started runtime with default settings) or ``runtime_factory`` (an async
callable that makes and starts more). Both are parametrized over the runtimes under test, so the
same tests run against each; only ``"standalone"`` exists for now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agnext_broker import AgentRuntime, SingleThreadedAgentRuntime

RuntimeFactory = Callable[..., Awaitable[AgentRuntime]]

RUNTIMES = ["standalone"]


def _make_standalone(**kwargs: Any) -> AgentRuntime:
    runtime = SingleThreadedAgentRuntime(**kwargs)
    runtime.start()
    return runtime


async def _shut_down(runtime: AgentRuntime) -> None:
    """Stop the runtime if it still runs (raising what an event handler raised), then close it."""
    try:
        # The standalone runtime has no public "is running" flag.
        if getattr(runtime, "_running", False):
            await runtime.stop()  # type: ignore[attr-defined]
    finally:
        await runtime.close()  # type: ignore[attr-defined]


@pytest.fixture(params=RUNTIMES, ids=RUNTIMES)
async def runtime_factory(request: pytest.FixtureRequest) -> AsyncIterator[RuntimeFactory]:
    """An async callable ``make(**kwargs)`` returning a started runtime; all are closed after."""
    kind: str = request.param
    created: list[AgentRuntime] = []

    async def make(**kwargs: Any) -> AgentRuntime:
        if kind == "standalone":
            runtime = _make_standalone(**kwargs)
        else:  # pragma: no cover - a runtime added to RUNTIMES must be built here
            raise ValueError(f"unknown runtime {kind!r}")
        created.append(runtime)
        return runtime

    yield make

    errors: list[BaseException] = []
    for runtime in reversed(created):
        try:
            await _shut_down(runtime)
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
async def runtime(runtime_factory: RuntimeFactory) -> AgentRuntime:
    """A started runtime with default settings."""
    return await runtime_factory()

"""Agent state: per agent, and for the whole runtime keyed "type/key"."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from agnext_broker import AgentId, AgentRuntime, CancellationToken

from .agents import (
    Add,
    Block,
    Blocker,
    Count,
    CounterAgent,
    GetCount,
    GetLog,
    Log,
    Marker,
    Reporter,
    register_agent,
    register_collector,
)


async def count_of(runtime: AgentRuntime, agent: AgentId) -> int:
    count: Count = await runtime.send_message(GetCount(), agent)
    return count.value


async def test_agent_save_state(runtime: AgentRuntime) -> None:
    await register_agent(runtime, CounterAgent, "counter")
    await runtime.send_message(Add(amount=3), AgentId("counter", "a"))
    await runtime.send_message(Add(amount=4), AgentId("counter", "a"))

    assert await runtime.agent_save_state(AgentId("counter", "a")) == {"count": 7}


async def test_agent_load_state(runtime: AgentRuntime) -> None:
    await register_agent(runtime, CounterAgent, "counter")
    await runtime.send_message(Add(amount=1), AgentId("counter", "a"))

    await runtime.agent_load_state(AgentId("counter", "a"), {"count": 10})

    assert await count_of(runtime, AgentId("counter", "a")) == 10
    assert (await runtime.send_message(Add(amount=1), AgentId("counter", "a"))) == Count(value=11)


async def test_agent_load_state_creates_the_agent(runtime: AgentRuntime) -> None:
    await register_agent(runtime, CounterAgent, "counter")

    await runtime.agent_load_state(AgentId("counter", "new"), {"count": 5})

    assert await count_of(runtime, AgentId("counter", "new")) == 5


async def test_agent_state_of_an_unknown_type_is_a_lookup_error(runtime: AgentRuntime) -> None:
    with pytest.raises(LookupError):
        await runtime.agent_save_state(AgentId("nobody", "k"))


async def test_agent_state_is_saved_between_turns(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Blocker, "blocker")
    blocker = AgentId("blocker", "k")
    token = CancellationToken()
    blocked = asyncio.create_task(
        runtime.send_message(Block("b"), blocker, cancellation_token=token)
    )
    await collector.take(1)  # the handler is running

    saving = asyncio.create_task(runtime.agent_save_state(blocker))
    for _ in range(20):  # let the save request reach the agent
        await asyncio.sleep(0)
    token.cancel()

    assert await saving == {"log": ["entered:b", "cancelled:b"]}
    with pytest.raises(asyncio.CancelledError):
        await blocked


async def test_runtime_state_is_keyed_by_agent_id(runtime: AgentRuntime) -> None:
    await register_agent(runtime, CounterAgent, "counter")
    await register_agent(runtime, Reporter, "reporter")
    await runtime.send_message(Add(amount=2), AgentId("counter", "a"))
    await runtime.send_message(Add(amount=5), AgentId("counter", "b"))
    await runtime.send_message(Marker("m"), AgentId("reporter", "r"))

    state = await runtime.save_state()

    assert state["counter/a"] == {"count": 2}
    assert state["counter/b"] == {"count": 5}
    assert state["reporter/r"] == {"log": ["marker:m"]}
    assert json.loads(json.dumps(state)) == state


async def test_runtime_state_round_trips_into_a_fresh_runtime(
    runtime_factory: Callable[..., Awaitable[AgentRuntime]],
) -> None:
    first = await runtime_factory()
    await register_agent(first, CounterAgent, "counter")
    await register_agent(first, Reporter, "reporter")
    await first.send_message(Add(amount=2), AgentId("counter", "a"))
    await first.send_message(Add(amount=5), AgentId("counter", "b"))
    await first.send_message(Marker("m"), AgentId("reporter", "r"))
    state = json.loads(json.dumps(await first.save_state()))

    second = await runtime_factory()
    await register_agent(second, CounterAgent, "counter")
    await register_agent(second, Reporter, "reporter")
    await second.load_state(state)

    assert await count_of(second, AgentId("counter", "a")) == 2
    assert await count_of(second, AgentId("counter", "b")) == 5
    assert await second.send_message(GetLog(), AgentId("reporter", "r")) == Log(["marker:m"])
    assert await count_of(first, AgentId("counter", "a")) == 2  # the first runtime is untouched


async def test_load_state_skips_types_this_runtime_does_not_know(runtime: AgentRuntime) -> None:
    await register_agent(runtime, CounterAgent, "counter")

    await runtime.load_state({"counter/a": {"count": 3}, "ghost/x": {"anything": True}})

    assert await count_of(runtime, AgentId("counter", "a")) == 3

"""Registering agent types, creating agents, and ClosureAgent."""

from __future__ import annotations

import pytest

from agnext_broker import (
    AgentId,
    AgentInstantiationContext,
    AgentRuntime,
    AgentType,
    CantHandleException,
    TopicId,
)

from .agents import (
    COLLECTOR,
    Count,
    CounterAgent,
    Echo,
    EchoAgent,
    Identity,
    IdentityAgent,
    Ping,
    Seen,
    WhoAmI,
    register_agent,
    register_announced_echo,
    register_collector,
    register_doubler,
    register_forwarder,
    register_mismatched,
)


async def test_register_returns_the_agent_type(runtime: AgentRuntime) -> None:
    assert await register_agent(runtime, EchoAgent, "echo") == AgentType("echo")


async def test_registering_a_type_twice_is_a_value_error(runtime: AgentRuntime) -> None:
    await register_agent(runtime, EchoAgent, "echo")

    with pytest.raises(ValueError, match="already"):
        await register_agent(runtime, CounterAgent, "echo")
    with pytest.raises(ValueError, match="already"):
        await runtime.register_factory("echo", EchoAgent)
    # The first registration is untouched.
    assert (await runtime.send_message(Echo("x"), AgentId("echo", "k"))).agent == "echo/k"


async def test_invalid_agent_type_name_is_a_value_error(runtime: AgentRuntime) -> None:
    with pytest.raises(ValueError, match="Invalid agent type"):
        await register_agent(runtime, EchoAgent, "no spaces/or slashes")


async def test_factory_of_the_wrong_class_fails_at_first_use(runtime: AgentRuntime) -> None:
    await register_mismatched(runtime)  # registering does not create an agent: no error yet

    with pytest.raises(ValueError, match="Factory registered"):
        await runtime.send_message(Echo("x"), AgentId("mismatched", "k"))


async def test_factory_sees_the_agent_id_it_creates(runtime: AgentRuntime) -> None:
    await register_agent(runtime, IdentityAgent, "identity")

    identity = await runtime.send_message(WhoAmI(), AgentId("identity", "k1"))

    assert identity == Identity("identity/k1", "identity/k1")


def test_instantiation_context_outside_a_factory_is_a_runtime_error() -> None:
    assert not AgentInstantiationContext.is_in_factory_call()
    with pytest.raises(RuntimeError):
        AgentInstantiationContext.current_agent_id()
    with pytest.raises(RuntimeError):
        AgentInstantiationContext.current_runtime()


async def test_get_is_lazy_by_default(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_announced_echo(runtime)

    lazy = await runtime.get("announced", "lazy")
    eager = await runtime.get("announced", "eager", lazy=False)
    [created] = await collector.take(1)

    assert (lazy, eager) == (AgentId("announced", "lazy"), AgentId("announced", "eager"))
    assert created.message == Seen("created", "announced/eager", None, None)
    # The lazy agent is created by its first message.
    await runtime.send_message(Echo("x"), lazy)
    [created] = await collector.take(1)
    assert created.message.agent == "announced/lazy"


async def test_get_accepts_an_id_a_type_or_a_name(runtime: AgentRuntime) -> None:
    await register_agent(runtime, EchoAgent, "echo")

    assert await runtime.get(AgentId("echo", "k")) == AgentId("echo", "k")
    assert await runtime.get(AgentType("echo"), "k") == AgentId("echo", "k")
    assert await runtime.get("echo") == AgentId("echo", "default")
    assert await runtime.get(AgentId("echo", "k"), lazy=False) == AgentId("echo", "k")


async def test_agents_are_created_once_per_id(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_announced_echo(runtime)

    await runtime.get("announced", "k", lazy=False)
    await runtime.send_message(Echo("x"), AgentId("announced", "k"))
    await runtime.send_message(Echo("y"), AgentId("announced", "other"))

    created = await collector.take(2)
    assert [c.message.agent for c in created] == ["announced/k", "announced/other"]
    assert collector.pending() == 0


async def test_agent_metadata(runtime: AgentRuntime) -> None:
    await register_agent(runtime, EchoAgent, "echo")

    metadata = await runtime.agent_metadata(AgentId("echo", "k"))

    assert metadata == {
        "type": "echo",
        "key": "k",
        "description": "Echoes text back with what it knows of the message.",
    }


async def test_closure_agent_with_subscriptions_sends_and_publishes(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime, "forwarded")
    await register_forwarder(runtime)

    await runtime.publish_message(Ping("hi"), TopicId("to_forward", "k9"))

    [got] = await collector.take(1)
    # The forwarder asked echo/k9 (as sender forwarder/k9) and published the reply.
    assert got.message == Seen("hi", "echo/k9", None, "forwarder/k9")
    assert got.agent == AgentId(COLLECTOR, "k9")
    assert got.topic == TopicId("forwarded", "k9")
    assert got.sender == AgentId("forwarder", "k9")


async def test_closure_agent_returns_the_closures_result(runtime: AgentRuntime) -> None:
    assert await register_doubler(runtime) == AgentType("doubler")

    assert await runtime.send_message(Count(value=21), AgentId("doubler", "k")) == Count(value=42)


async def test_closure_agent_refuses_other_types_with_policy_error(runtime: AgentRuntime) -> None:
    await register_doubler(runtime)

    with pytest.raises(CantHandleException):
        await runtime.send_message(Ping("p"), AgentId("doubler", "k"))

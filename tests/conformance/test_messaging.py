"""Direct messages: results, errors, unknown recipients, unhandled messages and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from agnext_broker import (
    AgentId,
    AgentRuntime,
    AgnextError,
    CancellationToken,
    CantHandleException,
    UndeliverableException,
)

from .agents import (
    AgentFailure,
    Block,
    Blocker,
    CycleAgent,
    Echo,
    EchoAgent,
    EchoReply,
    Fail,
    GetLog,
    Log,
    Marker,
    Ping,
    RefusingAgent,
    Relay,
    Reporter,
    Trail,
    register_agent,
    register_collector,
)


async def test_send_returns_the_handlers_result(runtime: AgentRuntime) -> None:
    # EchoAgent's handler names its parameters (incoming, context), not (message, ctx).
    await register_agent(runtime, EchoAgent, "echo")

    reply = await runtime.send_message(Echo("hello"), AgentId("echo", "k1"))

    assert reply == EchoReply("hello", "echo/k1", None, True, None)


async def test_handler_context_names_the_sender(runtime: AgentRuntime) -> None:
    await register_agent(runtime, EchoAgent, "echo")

    reply = await runtime.send_message(
        Echo("hi"), AgentId("echo", "k1"), sender=AgentId("someone", "s")
    )

    assert reply.sender == "someone/s"
    assert reply.is_rpc is True


async def test_each_key_is_its_own_agent(runtime: AgentRuntime) -> None:
    await register_agent(runtime, EchoAgent, "echo")

    first = await runtime.send_message(Echo("a"), AgentId("echo", "one"))
    second = await runtime.send_message(Echo("b"), AgentId("echo", "two"))

    assert (first.agent, second.agent) == ("echo/one", "echo/two")


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [("value", ValueError), ("key", KeyError), ("custom", AgentFailure)],
)
async def test_handler_exception_is_raised_in_the_caller(
    runtime: AgentRuntime, kind: str, error_type: type[Exception]
) -> None:
    await register_agent(runtime, EchoAgent, "echo")

    with pytest.raises(error_type) as raised:
        await runtime.send_message(Fail(kind, "it broke"), AgentId("echo", "k"))

    assert type(raised.value) is error_type
    assert raised.value.args == ("it broke",)


async def test_agent_keeps_working_after_its_handler_raised(runtime: AgentRuntime) -> None:
    await register_agent(runtime, EchoAgent, "echo")
    with pytest.raises(AgentFailure):
        await runtime.send_message(Fail("custom", "once"), AgentId("echo", "k"))

    reply = await runtime.send_message(Echo("again"), AgentId("echo", "k"))

    assert reply.text == "again"


async def test_unknown_agent_type_is_undeliverable(runtime: AgentRuntime) -> None:
    with pytest.raises(UndeliverableException) as raised:
        await runtime.send_message(Echo("x"), AgentId("nobody", "k"))

    assert isinstance(raised.value, LookupError)
    assert isinstance(raised.value, AgnextError)


async def test_unknown_agent_type_is_a_lookup_error(runtime: AgentRuntime) -> None:
    await register_agent(runtime, EchoAgent, "echo")

    with pytest.raises(LookupError):
        await runtime.send_message(Echo("x"), AgentId("echo2", "k"))


async def test_base_agent_cant_handle_exception_reaches_the_caller(runtime: AgentRuntime) -> None:
    await register_agent(runtime, RefusingAgent, "refuser")

    with pytest.raises(CantHandleException, match="refuser/k handles nothing"):
        await runtime.send_message(Ping("p"), AgentId("refuser", "k"))


async def test_routed_agent_without_a_handler_returns_none(runtime: AgentRuntime) -> None:
    # autogen semantics: on_unhandled_message logs and returns None; nothing is raised.
    await register_agent(runtime, EchoAgent, "echo")

    assert await runtime.send_message(Marker("m"), AgentId("echo", "k")) is None
    assert (await runtime.send_message(Echo("still"), AgentId("echo", "k"))).text == "still"


async def test_rpc_to_an_event_only_handler_is_unhandled(runtime: AgentRuntime) -> None:
    await register_agent(runtime, Reporter, "reporter")

    assert await runtime.send_message(Ping("p"), AgentId("reporter", "k")) is None
    assert await runtime.send_message(GetLog(), AgentId("reporter", "k")) == Log([])


async def test_cancelling_an_in_flight_send_cancels_the_caller_and_handler(
    runtime: AgentRuntime,
) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Blocker, "blocker")
    blocker = AgentId("blocker", "k")
    token = CancellationToken()
    sending = asyncio.create_task(
        runtime.send_message(Block("b1"), blocker, cancellation_token=token)
    )
    [entered] = await collector.take(1)
    assert entered.message.agent == "blocker/k"
    assert not sending.done()

    token.cancel()

    with pytest.raises(asyncio.CancelledError):
        await sending
    log = await runtime.send_message(GetLog(), blocker)
    assert log == Log(["entered:b1", "cancelled:b1"])


async def test_send_with_an_already_cancelled_token_is_cancelled(runtime: AgentRuntime) -> None:
    await register_collector(runtime)
    await register_agent(runtime, Blocker, "blocker")
    token = CancellationToken()
    token.cancel()

    with pytest.raises(asyncio.CancelledError):
        await runtime.send_message(
            Block("never"), AgentId("blocker", "k"), cancellation_token=token
        )


async def test_already_cancelled_token_cancels_even_a_quick_handler(runtime: AgentRuntime) -> None:
    await register_agent(runtime, EchoAgent, "echo")
    token = CancellationToken()
    token.cancel()

    with pytest.raises(asyncio.CancelledError):
        await runtime.send_message(Echo("too late"), AgentId("echo", "k"), cancellation_token=token)
    # The caller's task goes on normally afterwards (no cancellation left pending on it).
    await asyncio.sleep(0)
    assert (await runtime.send_message(Echo("next"), AgentId("echo", "k"))).text == "next"


async def test_cancelling_one_send_leaves_other_agents_alone(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Blocker, "blocker")
    await register_agent(runtime, EchoAgent, "echo")
    token = CancellationToken()
    sending = asyncio.create_task(
        runtime.send_message(Block("b"), AgentId("blocker", "k"), cancellation_token=token)
    )
    await collector.take(1)

    reply = await runtime.send_message(Echo("meanwhile"), AgentId("echo", "k"))
    token.cancel()

    assert reply.text == "meanwhile"
    with pytest.raises(asyncio.CancelledError):
        await sending


async def test_cancelling_a_queued_send_gives_up_its_place(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Blocker, "blocker")
    blocker = AgentId("blocker", "k")
    first, second = CancellationToken(), CancellationToken()
    running = asyncio.create_task(
        runtime.send_message(Block("b1"), blocker, cancellation_token=first)
    )
    await collector.take(1)
    queued = asyncio.create_task(
        runtime.send_message(Block("b2"), blocker, cancellation_token=second)
    )

    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert await runtime.send_message(GetLog(), blocker) == Log(["entered:b1", "cancelled:b1"])


async def test_an_error_deep_in_a_call_chain_reaches_the_first_caller(
    runtime: AgentRuntime,
) -> None:
    await register_agent(runtime, CycleAgent, "cycle")

    with pytest.raises(UndeliverableException):
        await runtime.send_message(Relay(["cycle/b", "nobody/x"]), AgentId("cycle", "a"))

    trail = await runtime.send_message(Relay(["cycle/b"]), AgentId("cycle", "a"))
    assert trail == Trail(["cycle/a", "cycle/b"])

"""RoutedAgent: handler selection by type, @event/@rpc, match=, unions and return types."""

from __future__ import annotations

import pytest

from agnext_broker import AgentId, AgentRuntime, TopicId, TypeSubscription

from .agents import (
    Count,
    Echo,
    GetLog,
    Log,
    Marker,
    MatchAgent,
    Note,
    Ping,
    Reporter,
    ReturnCheckAgent,
    RpcOnlyAgent,
    RpcReporter,
    UnhandledLogger,
    UnionAgent,
    register_agent,
    register_collector,
)


async def log_of(runtime: AgentRuntime, agent: AgentId) -> list[str]:
    log: Log = await runtime.send_message(GetLog(), agent)
    return log.entries


async def test_event_handler_is_not_called_for_an_rpc(runtime: AgentRuntime) -> None:
    await register_agent(runtime, Reporter, "reporter")

    assert await runtime.send_message(Ping("p"), AgentId("reporter", "k")) is None
    assert await log_of(runtime, AgentId("reporter", "k")) == []


async def test_rpc_handler_is_not_called_for_an_event(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, RpcOnlyAgent, "rpc_only")
    await runtime.add_subscription(TypeSubscription("pings", "rpc_only"))

    await runtime.publish_message(Ping("as-event"), TopicId("pings", "k"))
    await runtime.publish_message(Marker("end"), TopicId("pings", "k"))
    await collector.take(1)

    assert await log_of(runtime, AgentId("rpc_only", "k")) == ["marker:end"]
    assert await runtime.send_message(Ping("as-rpc"), AgentId("rpc_only", "k")) == "rpc:as-rpc"


async def test_event_and_rpc_handlers_of_one_type_split_by_kind(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, RpcReporter, "both")
    await runtime.add_subscription(TypeSubscription("pings", "both"))

    assert await runtime.send_message(Ping("direct"), AgentId("both", "k")) == "rpc:direct"
    await runtime.publish_message(Ping("published"), TopicId("pings", "k"))
    await collector.take(1)

    assert await log_of(runtime, AgentId("both", "k")) == ["rpc:direct", "event:published"]


async def test_message_handler_handles_events_and_rpcs(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")
    await runtime.add_subscription(TypeSubscription("marks", "reporter"))

    await runtime.send_message(Marker("direct"), AgentId("reporter", "k"))
    await runtime.publish_message(Marker("published"), TopicId("marks", "k"))
    await collector.take(1)

    assert await log_of(runtime, AgentId("reporter", "k")) == [
        "marker:direct",
        "marker:published",
    ]


@pytest.mark.parametrize(
    ("tag", "handler"),
    [("apple", "alpha"), ("banana", "bravo"), ("cherry", "zulu")],
)
async def test_match_tries_handlers_in_alphabetical_order(
    runtime: AgentRuntime, tag: str, handler: str
) -> None:
    await register_agent(runtime, MatchAgent, "matcher")

    assert await runtime.send_message(Ping(tag), AgentId("matcher", "k")) == handler


async def test_no_matching_handler_means_unhandled(runtime: AgentRuntime) -> None:
    await register_agent(runtime, MatchAgent, "matcher")

    assert await runtime.send_message(Marker("yes"), AgentId("matcher", "k")) == "yes"
    assert await runtime.send_message(Marker("no"), AgentId("matcher", "k")) is None


async def test_union_typed_handler_receives_each_member(runtime: AgentRuntime) -> None:
    await register_agent(runtime, UnionAgent, "union")

    assert await runtime.send_message(Ping("p"), AgentId("union", "k")) == "Ping:p"
    assert await runtime.send_message(Marker("m"), AgentId("union", "k")) == "Marker:m"
    assert await runtime.send_message(Echo("e"), AgentId("union", "k")) is None


async def test_undeclared_return_type_is_a_value_error_in_the_caller(
    runtime: AgentRuntime,
) -> None:
    await register_agent(runtime, ReturnCheckAgent, "returns")

    with pytest.raises(ValueError, match="str"):
        await runtime.send_message(Ping("not a count"), AgentId("returns", "k"))


async def test_non_strict_handler_returns_an_undeclared_type(runtime: AgentRuntime) -> None:
    await register_agent(runtime, ReturnCheckAgent, "returns")

    assert await runtime.send_message(Marker("lenient"), AgentId("returns", "k")) == "lenient"


async def test_union_return_type_allows_each_member(runtime: AgentRuntime) -> None:
    await register_agent(runtime, ReturnCheckAgent, "returns")

    assert await runtime.send_message(Echo("four"), AgentId("returns", "k")) == Count(value=4)
    assert await runtime.send_message(Echo(""), AgentId("returns", "k")) == Log([])


async def test_on_unhandled_message_receives_unmatched_messages(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, UnhandledLogger, "fallback")
    await runtime.add_subscription(TypeSubscription("stuff", "fallback"))
    agent = AgentId("fallback", "k")

    assert await runtime.send_message(Ping("direct"), agent) is None
    await runtime.publish_message(Echo("published"), TopicId("stuff", "k"))
    await runtime.publish_message(Marker("end"), TopicId("stuff", "k"))
    await collector.take(1)
    await runtime.send_message(Note("handled"), agent)

    assert await log_of(runtime, agent) == [
        "unhandled:Ping:rpc",
        "unhandled:Echo:event",
        "marker:end",
        "note:handled",
    ]

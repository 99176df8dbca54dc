"""Turn-based handling (one message at a time per agent, in arrival order), call chains that
come back to an agent, and the concurrent_handling opt-out."""

from __future__ import annotations

import asyncio

import pytest

from agnext_broker import AgentId, AgentRuntime, TopicId, TypePrefixSubscription, TypeSubscription

from .agents import (
    CallBackAgent,
    ConcurrentProbe,
    CycleAgent,
    Fanner,
    FanOut,
    GetLog,
    GetProbeStats,
    Log,
    Probe,
    ProbeStats,
    ProbeVia,
    PublishPing,
    Relay,
    Reporter,
    Trail,
    TurnProbe,
    register_agent,
    register_collector,
    register_probe_factory,
)


async def stats_of(runtime: AgentRuntime, probe: AgentId) -> ProbeStats:
    stats: ProbeStats = await runtime.send_message(GetProbeStats(), probe)
    return stats


async def test_turn_based_agent_handles_sends_one_at_a_time_in_order(
    runtime: AgentRuntime,
) -> None:
    await register_agent(runtime, TurnProbe, "probe")
    probe = AgentId("probe", "k")

    await asyncio.gather(*(runtime.send_message(Probe(i), probe) for i in range(5)))

    assert await stats_of(runtime, probe) == ProbeStats(1, [0, 1, 2, 3, 4])


async def test_turn_based_agent_handles_events_one_at_a_time_in_order(
    runtime: AgentRuntime,
) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, TurnProbe, "probe")
    await runtime.add_subscription(TypeSubscription("probes", "probe"))

    for i in range(5):
        await runtime.publish_message(Probe(i), TopicId("probes", "k"))
    await collector.take(5)

    assert await stats_of(runtime, AgentId("probe", "k")) == ProbeStats(1, [0, 1, 2, 3, 4])


async def test_concurrent_handling_lets_one_agent_handle_several_messages(
    runtime: AgentRuntime,
) -> None:
    await register_agent(runtime, ConcurrentProbe, "probe")
    probe = AgentId("probe", "k")

    await asyncio.gather(*(runtime.send_message(Probe(i, wait_for=3), probe) for i in range(3)))

    assert (await stats_of(runtime, probe)).max_concurrent == 3


async def test_concurrent_handling_also_holds_for_a_plain_factory(runtime: AgentRuntime) -> None:
    await register_probe_factory(runtime, ConcurrentProbe, "probe")
    probe = AgentId("probe", "k")

    await asyncio.gather(*(runtime.send_message(Probe(i, wait_for=3), probe) for i in range(3)))

    assert (await stats_of(runtime, probe)).max_concurrent == 3


@pytest.mark.parametrize("registration", ["register", "register_factory"])
async def test_concurrent_handling_applies_to_events(
    runtime: AgentRuntime, registration: str
) -> None:
    collector = await register_collector(runtime)
    if registration == "register":
        await register_agent(runtime, ConcurrentProbe, "probe")
    else:
        await register_probe_factory(runtime, ConcurrentProbe, "probe")
    await runtime.add_subscription(TypeSubscription("probes", "probe"))

    for i in range(3):
        await runtime.publish_message(Probe(i, wait_for=3), TopicId("probes", "k"))
    await collector.take(3)

    assert (await stats_of(runtime, AgentId("probe", "k"))).max_concurrent == 3


async def test_different_agents_handle_messages_concurrently(runtime: AgentRuntime) -> None:
    # fanner/a and fanner/b each wait in their handler until both probes are in the
    # (concurrent) probe at once: that only happens if fanner/a and fanner/b run concurrently.
    await register_agent(runtime, Fanner, "fanner")
    await register_agent(runtime, ConcurrentProbe, "meeting")

    await asyncio.gather(
        runtime.send_message(ProbeVia("meeting/p", 0, wait_for=2), AgentId("fanner", "a")),
        runtime.send_message(ProbeVia("meeting/p", 1, wait_for=2), AgentId("fanner", "b")),
    )

    assert (await stats_of(runtime, AgentId("meeting", "p"))).max_concurrent == 2


async def test_call_cycle_between_two_agents_does_not_deadlock(runtime: AgentRuntime) -> None:
    await register_agent(runtime, CycleAgent, "cycle")

    trail = await runtime.send_message(
        Relay(["cycle/b", "cycle/a", "cycle/b"]), AgentId("cycle", "a")
    )

    assert trail == Trail(["cycle/a", "cycle/b", "cycle/a", "cycle/b"])


async def test_agent_calling_itself_does_not_deadlock(runtime: AgentRuntime) -> None:
    await register_agent(runtime, CycleAgent, "cycle")

    trail = await runtime.send_message(Relay(["cycle/a", "cycle/a"]), AgentId("cycle", "a"))

    assert trail == Trail(["cycle/a", "cycle/a", "cycle/a"])


async def test_event_receivers_do_not_run_inside_the_publishers_turn(
    runtime: AgentRuntime,
) -> None:
    # The speaker publishes, then stays in its turn a while; the listener's event handler
    # sends a Note back to the speaker. As the event starts its own call chain, the Note waits
    # for the speaker's turn to end.
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "speaker")
    await register_agent(runtime, CallBackAgent, "listener")
    await runtime.add_subscription(TypeSubscription("room", "listener"))

    await runtime.send_message(PublishPing("hi", "room", "k"), AgentId("speaker", "k"))
    await collector.take(1)

    log: Log = await runtime.send_message(GetLog(), AgentId("speaker", "k"))
    assert log.entries == ["published:hi", "note:from listener/k"]


async def test_sends_fanned_out_by_one_handler_are_handled_one_at_a_time(
    runtime: AgentRuntime,
) -> None:
    await register_agent(runtime, Fanner, "fanner")
    await register_agent(runtime, TurnProbe, "probe")

    await runtime.send_message(FanOut("probe/k", 3), AgentId("fanner", "f"))

    stats = await stats_of(runtime, AgentId("probe", "k"))
    assert sorted(stats.order) == [0, 1, 2]
    assert stats.max_concurrent == 1


async def test_one_event_relayed_by_two_receivers_is_handled_one_at_a_time(
    runtime: AgentRuntime,
) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Fanner, "fanner_a")
    await register_agent(runtime, Fanner, "fanner_b")
    await register_agent(runtime, TurnProbe, "probe")
    await runtime.add_subscription(TypeSubscription("via", "fanner_a"))
    await runtime.add_subscription(TypeSubscription("via", "fanner_b"))

    await runtime.publish_message(ProbeVia("probe/k", 0), TopicId("via", "k"))
    await collector.take(2)

    assert (await stats_of(runtime, AgentId("probe", "k"))).max_concurrent == 1


async def test_one_event_delivered_twice_to_an_agent_is_handled_one_at_a_time(
    runtime: AgentRuntime,
) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, TurnProbe, "probe")
    await runtime.add_subscription(TypeSubscription("probes", "probe"))
    await runtime.add_subscription(TypePrefixSubscription("prob", "probe"))

    await runtime.publish_message(Probe(0), TopicId("probes", "k"))
    await collector.take(2)

    assert await stats_of(runtime, AgentId("probe", "k")) == ProbeStats(1, [0, 0])

"""Publishing: which subscriptions deliver, to which agent, and how often."""

from __future__ import annotations

import pytest

from agnext_broker import (
    AgentId,
    AgentRuntime,
    DefaultSubscription,
    DefaultTopicId,
    TopicId,
    TypePrefixSubscription,
    TypeSubscription,
)

from .agents import (
    COLLECTOR,
    Collected,
    DefaultReporter,
    GetLog,
    Log,
    Marker,
    Ping,
    PublishPing,
    Reporter,
    Seen,
    TeamReporter,
    register_agent,
    register_collector,
)


def deliveries(collected: list[Collected]) -> list[tuple[str, str, str | None]]:
    """(tag, agent, topic) of each Seen report, sorted: agents run concurrently."""
    return sorted((c.message.tag, c.message.agent, c.message.topic) for c in collected)


async def log_of(runtime: AgentRuntime, agent: AgentId) -> list[str]:
    log: Log = await runtime.send_message(GetLog(), agent)
    return log.entries


async def test_type_subscription_creates_one_agent_per_topic_source(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")
    await runtime.add_subscription(TypeSubscription("news", "reporter"))

    await runtime.publish_message(Ping("a"), TopicId("news", "alpha"))
    await runtime.publish_message(Ping("b"), TopicId("news", "beta"))

    assert deliveries(await collector.take(2)) == [
        ("a", "reporter/alpha", "news/alpha"),
        ("b", "reporter/beta", "news/beta"),
    ]


async def test_event_context_is_not_rpc_and_names_topic_and_sender(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime, "news")

    await runtime.publish_message(
        Ping("p"), TopicId("news", "s1"), sender=AgentId("publisher", "x")
    )

    [got] = await collector.take(1)
    assert got.agent == AgentId(COLLECTOR, "s1")
    assert got.message == Ping("p")
    assert got.topic == TopicId("news", "s1")
    assert got.sender == AgentId("publisher", "x")
    assert got.is_rpc is False


async def test_type_prefix_subscription_matches_topic_types_by_prefix(
    runtime: AgentRuntime,
) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")
    await runtime.add_subscription(TypePrefixSubscription("news.", "reporter"))

    await runtime.publish_message(Ping("miss"), TopicId("newsroom", "s"))
    await runtime.publish_message(Ping("hit"), TopicId("news.sports", "s"))
    await runtime.publish_message(Marker("end"), TopicId("news.weather", "s"))

    assert deliveries(await collector.take(2)) == [
        ("end", "reporter/s", "news.weather/s"),
        ("hit", "reporter/s", "news.sports/s"),
    ]
    assert await log_of(runtime, AgentId("reporter", "s")) == ["event:hit", "marker:end"]


async def test_register_adds_the_direct_message_prefix_subscription(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")

    await runtime.publish_message(Ping("bare"), TopicId("reporter:", "k1"))
    await runtime.publish_message(Ping("suffixed"), TopicId("reporter:inbox", "k2"))

    assert deliveries(await collector.take(2)) == [
        ("bare", "reporter/k1", "reporter:/k1"),
        ("suffixed", "reporter/k2", "reporter:inbox/k2"),
    ]


async def test_default_subscription_receives_the_default_topic(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")
    await runtime.add_subscription(DefaultSubscription(agent_type="reporter"))

    await runtime.publish_message(Ping("d"), DefaultTopicId())
    await runtime.publish_message(Ping("s"), DefaultTopicId(source="s1"))

    assert deliveries(await collector.take(2)) == [
        ("d", "reporter/default", "default/default"),
        ("s", "reporter/s1", "default/s1"),
    ]


async def test_default_subscription_decorator(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, DefaultReporter, "dflt")

    await runtime.publish_message(Ping("d"), DefaultTopicId())

    assert deliveries(await collector.take(1)) == [("d", "dflt/default", "default/default")]


async def test_type_subscription_decorator(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, TeamReporter, "member")

    await runtime.publish_message(Ping("ignored"), DefaultTopicId(source="s"))
    await runtime.publish_message(Ping("t"), TopicId("team", "s"))
    await runtime.publish_message(Marker("end"), TopicId("team", "s"))

    assert deliveries(await collector.take(2)) == [
        ("end", "member/s", "team/s"),
        ("t", "member/s", "team/s"),
    ]
    assert await log_of(runtime, AgentId("member", "s")) == ["event:t", "marker:end"]


async def test_publisher_never_receives_its_own_event(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "speaker")
    await register_agent(runtime, Reporter, "listener")
    await runtime.add_subscription(TypeSubscription("room", "speaker"))
    await runtime.add_subscription(TypeSubscription("room", "listener"))

    await runtime.send_message(PublishPing("hello", "room", "k"), AgentId("speaker", "k"))
    [heard] = await collector.take(1)
    await runtime.publish_message(Marker("end"), TopicId("room", "k"))
    await collector.take(2)

    assert heard.message == Seen("hello", "listener/k", "room/k", "speaker/k")
    assert await log_of(runtime, AgentId("speaker", "k")) == ["published:hello", "marker:end"]
    assert await log_of(runtime, AgentId("listener", "k")) == ["event:hello", "marker:end"]


async def test_publishers_own_type_with_another_key_receives_the_event(
    runtime: AgentRuntime,
) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "speaker")
    await runtime.add_subscription(TypeSubscription("room", "speaker"))

    await runtime.send_message(PublishPing("hello", "room", "other"), AgentId("speaker", "k"))

    [heard] = await collector.take(1)
    assert heard.message == Seen("hello", "speaker/other", "room/other", "speaker/k")


async def test_default_topic_in_a_handler_uses_the_handlers_key(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime, "default")
    await register_agent(runtime, Reporter, "reporter")

    await runtime.send_message(PublishPing("p", "default"), AgentId("reporter", "k7"))

    [got] = await collector.take(1)
    assert got.message == Ping("p")
    assert got.topic == TopicId("default", "k7")
    assert got.agent == AgentId(COLLECTOR, "k7")
    assert got.sender == AgentId("reporter", "k7")


def test_default_topic_outside_a_handler_uses_source_default() -> None:
    assert DefaultTopicId() == TopicId("default", "default")
    assert DefaultTopicId("other", "s") == TopicId("other", "s")


async def test_each_matching_subscription_delivers_once(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")
    await runtime.add_subscription(TypeSubscription("twice", "reporter"))
    await runtime.add_subscription(TypePrefixSubscription("twi", "reporter"))

    await runtime.publish_message(Ping("p"), TopicId("twice", "k"))
    await collector.take(2)
    await runtime.publish_message(Marker("end"), TopicId("reporter:", "k"))
    await collector.take(1)

    assert await log_of(runtime, AgentId("reporter", "k")) == ["event:p", "event:p", "marker:end"]


async def test_removed_subscription_no_longer_delivers(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime)
    await register_agent(runtime, Reporter, "reporter")
    removed = TypeSubscription("old", "reporter")
    await runtime.add_subscription(removed)
    await runtime.add_subscription(TypeSubscription("kept", "reporter"))
    await runtime.publish_message(Ping("before"), TopicId("old", "k"))
    await collector.take(1)

    await runtime.remove_subscription(removed.id)
    await runtime.publish_message(Ping("after"), TopicId("old", "k"))
    await runtime.publish_message(Marker("end"), TopicId("kept", "k"))
    await collector.take(1)

    assert await log_of(runtime, AgentId("reporter", "k")) == ["event:before", "marker:end"]


async def test_removing_an_unknown_subscription_is_a_value_error(runtime: AgentRuntime) -> None:
    # The message is not part of the API (autogen-core: "Subscription does not exist").
    with pytest.raises(ValueError):  # noqa: PT011
        await runtime.remove_subscription("no-such-id")


async def test_duplicate_subscription_is_a_value_error(runtime: AgentRuntime) -> None:
    await register_agent(runtime, Reporter, "reporter")
    subscription = TypeSubscription("news", "reporter")
    await runtime.add_subscription(subscription)

    with pytest.raises(ValueError, match="already exists"):
        await runtime.add_subscription(subscription)
    with pytest.raises(ValueError, match="already exists"):
        await runtime.add_subscription(TypeSubscription("news", "reporter"))
    prefix = TypePrefixSubscription("news.", "reporter")
    await runtime.add_subscription(prefix)
    with pytest.raises(ValueError, match="already exists"):
        await runtime.add_subscription(TypePrefixSubscription("news.", "reporter"))


async def test_publish_to_a_topic_nobody_subscribes_to_is_fine(runtime: AgentRuntime) -> None:
    collector = await register_collector(runtime, "heard")

    await runtime.publish_message(Ping("lost"), TopicId("unheard", "k"))
    await runtime.publish_message(Ping("found"), TopicId("heard", "k"))

    [got] = await collector.take(1)
    assert got.message == Ping("found")

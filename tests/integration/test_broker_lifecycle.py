"""The broker runtime's lifecycle: calls made before ``start()`` wait for it (within their
bounds), ``stop_when_idle()`` returns once the work is done, instances stay reachable after
``stop()`` until ``close()``, and a stopped runtime starts again."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio

from agnext_broker import (
    AgentId,
    NotAccessibleError,
    PublishTimeoutError,
    RpcTimeoutError,
    TopicId,
)
from agnext_broker.application.broker import BrokerAgentRuntime
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Counter,
    Increment,
    ReadCount,
    register_counter,
)
from tests.integration.apps_lifecycle import (
    CASCADE_TYPE,
    HANDLED,
    Cascade,
    Link,
    cascade_topic,
    cascade_total,
    chain_topic,
    register_cascade,
)
from tests.integration.workers import (
    AGENT_TYPES,
    bounded,
    broker_settings,
    forget_namespace,
    wait_until,
)
from tests.servers import AmqpCleanup, AnyRabbitMQ, AnyRedis

pytestmark = pytest.mark.integration

App = Callable[[BrokerAgentRuntime], Awaitable[None]]


@dataclass
class Runtimes:
    """Broker runtimes of one test in any state (new, started, stopped); ``close()`` closes
    every one of them (``RuntimePool`` only handles started ones)."""

    amqp_url: str
    redis_url: str
    namespace: str
    made: list[BrokerAgentRuntime] = field(default_factory=list)

    async def new(self, app: App | None = None, **changes: Any) -> BrokerAgentRuntime:
        """A runtime that is not started; ``app(runtime)`` registers its agents."""
        runtime = BrokerAgentRuntime(
            broker_settings(self.amqp_url, self.redis_url, self.namespace, **changes)
        )
        self.made.append(runtime)
        if app is not None:
            await app(runtime)
        return runtime

    async def started(self, app: App | None = None, **changes: Any) -> BrokerAgentRuntime:
        runtime = await self.new(app, **changes)
        await bounded(runtime.start(), "runtime.start()")
        return runtime

    async def close(self) -> None:
        errors: list[BaseException] = []
        for runtime in reversed(self.made):
            try:
                await bounded(runtime.close(), "runtime.close()")
            except Exception as e:
                errors.append(e)
        self.made.clear()
        if errors:
            raise errors[0]


@pytest.fixture
async def lifecycle(
    rabbitmq: AnyRabbitMQ,
    redis_server: AnyRedis,
    namespace: str,
    redis_client: redis.asyncio.Redis,
    amqp_cleanup: AmqpCleanup,
) -> AsyncIterator[Runtimes]:
    forget_namespace(amqp_cleanup, (*AGENT_TYPES, CASCADE_TYPE))
    runtimes = Runtimes(rabbitmq.amqp_url, redis_server.redis_url, namespace)
    try:
        yield runtimes
    finally:
        await runtimes.close()


# -- a: calls before start() ---------------------------------------------------------------------


async def test_send_and_publish_made_before_start_wait_for_it(lifecycle: Runtimes) -> None:
    await lifecycle.started(register_counter)
    client = await lifecycle.new(rpc_timeout=30.0, publish_timeout=30.0)
    agent = AgentId(COUNTER_TYPE, "early")

    sent = asyncio.ensure_future(client.send_message(Increment(2), agent))
    published = asyncio.ensure_future(
        client.publish_message(Increment(5), TopicId(INCREMENTS_TOPIC, agent.key))
    )
    await asyncio.sleep(0)  # both run up to their wait for the start
    assert not sent.done()
    assert not published.done()

    await bounded(client.start(), "client.start()")
    answer = await bounded(sent, "the send made before start()")
    await bounded(published, "the publish made before start()")
    assert answer in (2, 7), f"the send was answered with {answer!r}"

    async def counted() -> bool:
        return await client.send_message(ReadCount(), agent) == 7

    await wait_until(counted, timeout=30, what="both increments are counted")


async def test_send_and_publish_on_a_runtime_never_started_time_out(lifecycle: Runtimes) -> None:
    await lifecycle.started(register_counter)
    idle = await lifecycle.new(rpc_timeout=1.0, publish_timeout=1.0)
    agent = AgentId(COUNTER_TYPE, "never")

    started = time.monotonic()
    with pytest.raises(RpcTimeoutError, match="not started"):
        await bounded(idle.send_message(Increment(1), agent), "a send, never started", 30)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 4.0, f"the send ended after {elapsed:.2f} s"

    started = time.monotonic()
    with pytest.raises(PublishTimeoutError, match="not started"):
        await bounded(
            idle.publish_message(Increment(1), TopicId(INCREMENTS_TOPIC, agent.key)),
            "a publish, never started",
            30,
        )
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 4.0, f"the publish ended after {elapsed:.2f} s"


# -- b: stop_when_idle() -------------------------------------------------------------------------


CHAIN_LENGTH = 2000


def root_event(shape: str, run: str) -> tuple[Any, TopicId, int]:
    """The first event of a ``shape`` ("tree" or "chain") of events, where it goes, and how
    many events it makes in all."""
    if shape == "tree":
        return Cascade(run, 0, "root"), cascade_topic(run), cascade_total()
    return Link(run, 0, CHAIN_LENGTH), chain_topic(run, 0), CHAIN_LENGTH


@pytest.mark.timeout(600)
@pytest.mark.parametrize("shape", ["tree", "chain"])
async def test_stop_when_idle_returns_once_a_cascade_is_done(
    lifecycle: Runtimes, shape: str
) -> None:
    """A tree (depth 3, branching 12: 1,885 events, many in flight at once) or a chain (2,000
    events, one at a time: stop_when_idle() checks between each one and the next)."""
    for attempt in range(3):
        run = f"{shape}{attempt}-{uuid.uuid4().hex[:6]}"
        first, topic, expected = root_event(shape, run)
        assert 1800 <= expected <= 2200
        runtime = await lifecycle.started(register_cascade, rpc_timeout=60.0)
        started = time.monotonic()
        await runtime.publish_message(first, topic)
        await bounded(runtime.stop_when_idle(), "stop_when_idle()", 300)
        handled = list(HANDLED.get(run, []))
        elapsed = time.monotonic() - started
        print(f"{run}: {len(handled)} of {expected} events handled in {elapsed:.2f} s")
        repeated = len(handled) - len(set(handled))
        assert len(set(handled)) == expected, (
            f"attempt {attempt}: stop_when_idle() returned with {len(set(handled))} of "
            f"{expected} events handled ({repeated} handled twice)"
        )
        assert repeated == 0, f"attempt {attempt}: {repeated} events were handled twice"
        await bounded(runtime.close(), "runtime.close()")
        # Nothing was left behind to be handled later.
        assert len(HANDLED[run]) == expected


# -- c: instances after stop() -------------------------------------------------------------------


async def test_instances_are_reachable_after_stop_until_close(lifecycle: Runtimes) -> None:
    runtime = await lifecycle.started(register_counter)
    agent = AgentId(COUNTER_TYPE, "k")
    for amount in (1, 2, 3, 4):
        await runtime.send_message(Increment(amount), agent)
    assert await runtime.send_message(ReadCount(), agent) == 10

    await bounded(runtime.stop_when_idle(), "stop_when_idle()")
    instance = await runtime.try_get_underlying_agent_instance(agent, Counter)
    assert isinstance(instance, Counter)
    assert instance.count == 10
    # The same instance again, not a new one loaded from the saved state.
    assert await runtime.try_get_underlying_agent_instance(agent, Counter) is instance

    await bounded(runtime.close(), "runtime.close()")
    with pytest.raises(NotAccessibleError):
        await runtime.try_get_underlying_agent_instance(agent, Counter)


# -- d: start again after stop -------------------------------------------------------------------


async def test_runtimes_start_again_after_stop(lifecycle: Runtimes) -> None:
    host = await lifecycle.started(register_counter)
    client = await lifecycle.started()
    agent = AgentId(COUNTER_TYPE, "again")
    assert await client.send_message(Increment(1), agent) == 1

    # A client (it hosts nothing): start -> send -> stop -> start -> send.
    await bounded(client.stop(), "client.stop()")
    await bounded(client.start(), "client.start() again")
    assert await client.send_message(Increment(1), agent) == 2

    # The host as well: it takes its partitions again, and the agent goes on from its state.
    await bounded(host.stop(), "host.stop()")
    await bounded(host.start(), "host.start() again")
    assert await client.send_message(Increment(1), agent) == 3
    assert await host.send_message(Increment(1), agent) == 4
    await client.publish_message(Increment(10), TopicId(INCREMENTS_TOPIC, agent.key))

    async def counted() -> bool:
        return await client.send_message(ReadCount(), agent) == 14

    await wait_until(counted, timeout=30, what="the event published after the restarts counts")

    # And once more, both, with stop_when_idle().
    await bounded(host.stop_when_idle(), "host.stop_when_idle()")
    await bounded(host.start(), "host.start() a third time")
    assert await host.send_message(ReadCount(), agent) == 14

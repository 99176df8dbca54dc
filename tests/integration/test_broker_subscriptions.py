"""Subscriptions are shared: one added or removed at run time on one runtime changes what the
agents hosted by another runtime (another process) receive."""

from __future__ import annotations

import pytest
import redis.asyncio

from agnext_broker import AgentId, TopicId, TypeSubscription
from agnext_broker.application.broker import BrokerAgentRuntime
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Increment,
    ReadCount,
    register_counter,
)
from tests.integration.workers import (
    RuntimePool,
    WorkerPool,
    runtimes_fixture,  # noqa: F401
    workers_fixture,  # noqa: F401
)

pytestmark = pytest.mark.integration

BONUS_TOPIC = "bonus"


async def count_after(publisher: BrokerAgentRuntime, key: str, marker: int) -> int:
    """Publish ``Increment(marker)`` on ``increments`` and read the count: events published
    before it to the same key share its partition queue, so they are counted first."""
    await publisher.publish_message(Increment(marker), TopicId(INCREMENTS_TOPIC, key))
    count: int = await publisher.send_message(ReadCount(), AgentId(COUNTER_TYPE, key))
    return count


@pytest.mark.integration
async def test_subscription_added_in_one_process_reaches_agents_in_another(
    workers: WorkerPool, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    worker = workers.start_worker("register_counter")
    await workers.wait_registered(redis_client, worker)
    client = await runtimes.start(rpc_timeout=15.0)

    # Before: nobody subscribes counters to "bonus".
    await client.publish_message(Increment(1), TopicId(BONUS_TOPIC, "k"))
    assert await count_after(client, "k", 100) == 100

    subscription = TypeSubscription(BONUS_TOPIC, COUNTER_TYPE)
    await client.add_subscription(subscription)
    await client.publish_message(Increment(1), TopicId(BONUS_TOPIC, "k"))
    await client.publish_message(Increment(2), TopicId(BONUS_TOPIC, "other"))
    assert await count_after(client, "k", 100) == 201, workers.logs()
    assert await client.send_message(ReadCount(), AgentId(COUNTER_TYPE, "other")) == 2

    await client.remove_subscription(subscription.id)
    await client.publish_message(Increment(1), TopicId(BONUS_TOPIC, "k"))
    assert await count_after(client, "k", 100) == 301, workers.logs()


@pytest.mark.integration
async def test_subscription_shared_before_the_type_is_hosted_and_removed_elsewhere(
    runtimes: RuntimePool,
) -> None:
    # A runtime that hosts nothing subscribes counters before any worker hosts them.
    client = await runtimes.start()
    subscription = TypeSubscription(BONUS_TOPIC, COUNTER_TYPE)
    await client.add_subscription(subscription)

    worker = await runtimes.start(register_counter)
    await client.publish_message(Increment(3), TopicId(BONUS_TOPIC, "k"))
    assert await count_after(client, "k", 100) == 103

    # The hosting runtime removes the subscription another runtime added.
    await worker.remove_subscription(subscription.id)
    await client.publish_message(Increment(3), TopicId(BONUS_TOPIC, "k"))
    assert await count_after(client, "k", 100) == 203

    # And a second hosting runtime added later does not bring it back.
    await runtimes.start(register_counter)
    await client.publish_message(Increment(3), TopicId(BONUS_TOPIC, "k"))
    assert await count_after(client, "k", 100) == 303

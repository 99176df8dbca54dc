"""A subscription added (or removed) at run time reaches every worker within a heartbeat or so,
by an explicit mechanism (the registry's subscriptions version, read with every heartbeat), not
only when an event happens to find no recipient there.

Worker W subscribes ``counter`` to topic type ``incr``; runtime P then adds a prefix
subscription ``incr`` -> ``counter``. An ``incr`` event then matches two subscriptions, and
counter/<source> receives it once per matching subscription. A W that reloaded its
subscriptions only when an event found no recipient would never notice the second one (the
first already gives the event a recipient) and would count such an event once.
"""

from __future__ import annotations

import pytest

from agnext_broker import AgentId, TopicId, TypePrefixSubscription
from agnext_broker.application.broker import BrokerAgentRuntime
from tests.integration.apps import COUNTER_TYPE, Increment, ReadCount
from tests.integration.apps_messages import INCR_TOPIC, register_counter_on_incr
from tests.integration.workers import (
    HEARTBEAT_INTERVAL,
    RuntimePool,
    runtimes_fixture,  # noqa: F401
    wait_until,
)

pytestmark = pytest.mark.integration

BOUND = 3 * HEARTBEAT_INTERVAL + 2.0


def knows(runtime: BrokerAgentRuntime, subscription: TypePrefixSubscription) -> bool:
    """Whether ``runtime`` counts ``subscription`` among the namespace's subscriptions."""
    return any(
        isinstance(s, TypePrefixSubscription)
        and s.topic_type_prefix == subscription.topic_type_prefix
        and s.agent_type == subscription.agent_type
        for s in runtime._sharing.subscriptions
    )


async def count_after_one_event(publisher: BrokerAgentRuntime, key: str) -> int:
    """Publish one ``Increment(1)`` to ``incr/<key>`` and read counter/<key>: the event is
    confirmed before the request is sent to the same partition queue, so it is counted first."""
    await publisher.publish_message(Increment(1), TopicId(INCR_TOPIC, key))
    count: int = await publisher.send_message(ReadCount(), AgentId(COUNTER_TYPE, key))
    return count


async def test_subscription_added_at_run_time_reaches_a_worker_within_a_heartbeat(
    runtimes: RuntimePool,
) -> None:
    w = await runtimes.start(register_counter_on_incr)
    p = await runtimes.start()
    # One matching subscription: counted once.
    assert await count_after_one_event(p, "k0") == 1

    prefix = TypePrefixSubscription(INCR_TOPIC, COUNTER_TYPE)
    assert not knows(w, prefix)
    await p.add_subscription(prefix)

    async def w_knows() -> bool:
        return knows(w, prefix)

    await wait_until(
        w_knows,
        timeout=BOUND,
        what=f"W's known subscriptions include {prefix!r} (added by P)",
        details=lambda: f"W knows {w._sharing.subscriptions!r}",
    )
    # Two matching subscriptions: counter/k receives the one event twice.
    assert await count_after_one_event(p, "k") == 2

    await p.remove_subscription(prefix.id)

    async def w_forgot() -> bool:
        return not knows(w, prefix)

    await wait_until(
        w_forgot,
        timeout=BOUND,
        what=f"W's known subscriptions no longer include {prefix!r} (removed by P)",
        details=lambda: f"W knows {w._sharing.subscriptions!r}",
    )
    # One matching subscription again.
    assert await count_after_one_event(p, "k") == 3

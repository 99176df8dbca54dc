"""Idle agents are deactivated, and come back from their saved state on their next message."""

from __future__ import annotations

import pytest
import redis.asyncio

from agnext_broker import AgentId
from agnext_broker.application.broker._names import Names
from tests.integration.apps import COUNTER_TYPE, Increment, ReadCount, register_counter
from tests.integration.workers import (
    RuntimePool,
    runtimes_fixture,  # noqa: F401
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_idle_agent_is_deactivated_and_resumes_from_its_state(
    runtimes: RuntimePool, redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    # The sweep runs every max(1 s, idle_timeout / 4).
    runtime = await runtimes.start(register_counter, idle_timeout=1.0)
    agent = AgentId(COUNTER_TYPE, "sleepy")
    active = Names(namespace).active_key(COUNTER_TYPE)

    assert await runtime.send_message(Increment(5), agent) == 5

    async def listed_active() -> bool:
        return await redis_client.zscore(active, "sleepy") is not None

    async def deactivated() -> bool:
        return not await listed_active()  # a deactivated agent leaves the active list

    await wait_until(listed_active, timeout=10, what="the agent is listed as active")
    await wait_until(deactivated, timeout=10, what="the idle agent is deactivated")

    assert await runtime.send_message(Increment(1), agent) == 6  # its state came back
    assert await runtime.send_message(ReadCount(), agent) == 6

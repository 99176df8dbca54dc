"""RabbitMQ restarting under running runtimes: work stalls, then resumes on the same workers."""

from __future__ import annotations

import asyncio

import pytest

from agnext_broker import AgentId
from agnext_broker.application.broker import BrokerAgentRuntime
from tests.integration.apps import COUNTER_TYPE, Increment, ReadCount, register_counter
from tests.integration.workers import (
    RuntimePool,
    runtimes_fixture,  # noqa: F401
)
from tests.servers import RabbitMQServer

pytestmark = pytest.mark.integration


async def _increment_once_back(client: BrokerAgentRuntime, agent: AgentId, amount: int) -> int:
    """Send until the broker answers again: sends during the outage fail or stall."""
    failures: list[str] = []
    for _ in range(40):
        try:
            return int(await asyncio.wait_for(client.send_message(Increment(amount), agent), 5))
        except Exception as e:
            failures.append(f"{type(e).__name__}: {e}")
            await asyncio.sleep(0.5)
    raise AssertionError("no answer after the restart; attempts:\n" + "\n".join(failures))


@pytest.mark.timeout(300)
async def test_runtimes_resume_after_rabbitmq_restarts(
    runtimes: RuntimePool, private_rabbitmq: RabbitMQServer
) -> None:
    worker = await runtimes.start(register_counter)
    client = await runtimes.start(rpc_timeout=10.0)
    agent = AgentId(COUNTER_TYPE, "survivor")
    assert await client.send_message(Increment(1), agent) == 1

    await private_rabbitmq.astop()
    await private_rabbitmq.astart()

    # The same worker consumes its partitions again and the client gets its replies again;
    # the agent's count goes on from its saved state (sends that timed out during the outage
    # may have been applied as well: they stay queued in the durable partition queue).
    count = await _increment_once_back(client, agent, 2)
    assert count >= 3
    assert (count - 1) % 2 == 0
    assert await client.send_message(ReadCount(), agent) == count
    assert await worker.send_message(ReadCount(), agent) == count

"""RabbitMQ restarting under running runtimes: work stalls, then resumes on the same workers,
and what was in flight is answered, applied once, and never dead-lettered."""

from __future__ import annotations

import asyncio

import pytest

from agnext_broker import AgentId
from agnext_broker.application.broker import BrokerAgentRuntime
from tests.integration.apps import COUNTER_TYPE, Increment, Nap, ReadCount, register_counter
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


KEYS = [f"r{i}" for i in range(8)]


@pytest.mark.timeout(300)
async def test_requests_in_flight_across_a_restart_are_answered_and_none_is_dead_lettered(
    runtimes: RuntimePool, private_rabbitmq: RabbitMQServer, namespace: str
) -> None:
    """Requests being handled when RabbitMQ restarts: their workers answer once they can
    publish again (a worker consumes again only then), every request is applied once (callers
    retry with the same message id), and none runs out of deliveries into the dead-letter
    queue."""
    worker = await runtimes.start(register_counter, publish_timeout=60.0)
    client = await runtimes.start(rpc_timeout=5.0)
    for key in KEYS:  # the agents are active
        assert await client.send_message(Increment(1), AgentId(COUNTER_TYPE, key)) == 1

    async def call(message: object, key: str, message_id: str) -> object:
        """Send until answered, always with the same message id (as a careful caller does)."""
        for _ in range(60):
            try:
                return await client.send_message(
                    message, AgentId(COUNTER_TYPE, key), message_id=message_id
                )
            except (TimeoutError, ConnectionError):
                await asyncio.sleep(0.5)
        raise AssertionError(f"{message_id} never answered")

    naps = [asyncio.ensure_future(call(Nap(3.0), key, f"nap-{key}")) for key in KEYS]
    increments = [
        asyncio.ensure_future(call(Increment(1), key, f"inc-{key}-{n}"))
        for key in KEYS
        for n in range(5)
    ]
    await private_rabbitmq.astop()  # while the naps run, with increments queued behind them
    await private_rabbitmq.astart()

    await asyncio.wait_for(asyncio.gather(*naps, *increments), 240)
    for key in KEYS:
        assert await client.send_message(ReadCount(), AgentId(COUNTER_TYPE, key)) == 6
    listed = await private_rabbitmq.actl("list_queues", "name", "messages", "--quiet")
    dead = [line for line in listed.stdout.splitlines() if line.startswith(f"{namespace}.dead")]
    assert dead == [f"{namespace}.dead-letter\t0"], listed.stdout
    session = worker._session
    assert session is not None
    # What the broker gave back after the restart came back at most once or twice.
    assert session.hosting.ownership.stats.highest_delivery_count <= 2

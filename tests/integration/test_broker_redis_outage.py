"""Redis stopping under a running worker: the state write of a handled message waits for Redis,
then lands once, and the caller gets its answer."""

from __future__ import annotations

import asyncio

import pytest

from agnext_broker import AgentId
from tests.integration.apps import COUNTER_TYPE, Increment, ReadCount, register_counter
from tests.integration.workers import (
    RuntimePool,
    runtimes_fixture,  # noqa: F401
)
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 1.5


@pytest.mark.timeout(120)
async def test_a_message_handled_while_redis_is_down_is_saved_once_it_is_back(
    runtimes: RuntimePool, private_redis_server: RedisServer
) -> None:
    # Heartbeats fail during the outage: a longer expiry keeps the worker live meanwhile.
    worker = await runtimes.start(register_counter, worker_expiry=15.0)
    client = await runtimes.start(rpc_timeout=30.0, worker_expiry=15.0)
    agent = AgentId(COUNTER_TYPE, "patient")
    assert await client.send_message(Increment(1), agent) == 1

    await private_redis_server.astop()
    try:
        # The worker runs the handler (the agent is active), then cannot save its state.
        sending = asyncio.ensure_future(client.send_message(Increment(2), agent))
        await asyncio.sleep(OUTAGE_SECONDS)
        assert not sending.done(), "answered before its state could be saved"
    finally:
        await private_redis_server.astart()

    # Saved once Redis is back, then answered; the handler's effect counted once.
    assert await asyncio.wait_for(sending, 30) == 3
    assert await client.send_message(ReadCount(), agent) == 3
    assert await worker.send_message(ReadCount(), agent) == 3

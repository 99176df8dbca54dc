"""Agents' state in Redis: a readable JSON document per agent, and agents that resume from it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
import redis.asyncio

from agnext_broker import AgentId, TopicId
from agnext_broker.application.broker._names import Names
from agnext_broker.application.broker._state_store import AgentRecord, StateStore
from tests.integration.apps import (
    COUNTER_TYPE,
    FORWARDED_TOPIC,
    FORWARDER_TYPE,
    INCREMENTS_TOPIC,
    GetStatus,
    Increment,
    ReadCount,
    register_counter,
    register_counter_and_forwarder,
)
from tests.integration.workers import (
    RuntimePool,
    runtimes_fixture,  # noqa: F401
    state_document,
    wait_until,
)
from tests.servers import RedisServer

pytestmark = pytest.mark.integration


def redis_cli_get(server: RedisServer, key: str) -> str:
    """``redis-cli -h 127.0.0.1 -p PORT GET key``: what an operator would see."""
    done = subprocess.run(
        ["redis-cli", "-h", server.host, "-p", str(server.port), "GET", key],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.mark.integration
async def test_state_document_is_readable_json_in_redis(
    private_redis_server: RedisServer, namespace: str, runtimes: RuntimePool
) -> None:
    runtime = await runtimes.start(register_counter)
    agent = AgentId(COUNTER_TYPE, "alpha")
    ids = [f"inc-{i}" for i in range(3)]
    for i, message_id in enumerate(ids):
        assert await runtime.send_message(Increment(2), agent, message_id=message_id) == 2 * (i + 1)
    # An event is applied under its id too.
    await runtime.publish_message(
        Increment(10), TopicId(INCREMENTS_TOPIC, "alpha"), message_id="event-1"
    )
    assert await runtime.send_message(ReadCount(), agent, message_id="read-1") == 16

    key = f"{namespace}:agent:{{{COUNTER_TYPE}/alpha}}"
    printed = await asyncio.to_thread(redis_cli_get, private_redis_server, key)
    assert printed.strip(), f"redis-cli GET {key} printed nothing"
    document: dict[str, Any] = json.loads(printed)
    assert document["state"] == {"count": 16, "blobs": 0}
    assert isinstance(document["version"], int)
    assert document["version"] >= 5  # one write per applied message
    assert [*ids, "event-1", "read-1"] == [
        i for i in document["applied"] if i in {*ids, "event-1", "read-1"}
    ]
    # The stored RPC responses let a retry be answered without applying twice.
    assert json.loads(document["responses"]["inc-2"]["data"]) == 6

    # A retry of an applied id is answered from the stored response and changes nothing.
    assert await runtime.send_message(Increment(2), agent, message_id="inc-0") == 2
    assert await runtime.send_message(ReadCount(), agent) == 16


@pytest.mark.integration
async def test_agent_resumes_from_saved_state_after_restart(
    private_redis_server: RedisServer, namespace: str, runtimes: RuntimePool
) -> None:
    first = await runtimes.start(register_counter)
    for key, amount in (("alpha", 3), ("beta", 5), ("alpha", 4)):
        await first.send_message(Increment(amount), AgentId(COUNTER_TYPE, key))
    await runtimes.stop(first)

    second = await runtimes.start(register_counter)
    assert second.settings.worker_id != first.settings.worker_id
    status = await second.send_message(GetStatus(), AgentId(COUNTER_TYPE, "alpha"))
    assert status.count == 7
    assert await second.send_message(ReadCount(), AgentId(COUNTER_TYPE, "beta")) == 5
    assert await second.send_message(Increment(1), AgentId(COUNTER_TYPE, "alpha")) == 8

    document = json.loads(
        await asyncio.to_thread(
            redis_cli_get, private_redis_server, f"{namespace}:agent:{{{COUNTER_TYPE}/alpha}}"
        )
    )
    assert document["state"]["count"] == 8
    # The state is also what the runtime reports, from any process.
    assert (await second.agent_save_state(AgentId(COUNTER_TYPE, "alpha")))["count"] == 8


async def test_events_to_an_agent_that_keeps_no_state_leave_no_record(
    namespace: str, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    runtime = await runtimes.start(register_counter_and_forwarder)
    for _ in range(3):
        await runtime.publish_message(Increment(2), TopicId(FORWARDED_TOPIC, "k"))
    counter = AgentId(COUNTER_TYPE, "k")

    async def counted() -> bool:
        return await runtime.send_message(ReadCount(), counter) == 6

    await wait_until(counted, timeout=30, what="the forwarder passed 3 increments on")
    await runtimes.stop(runtime)  # after the deliveries in flight finished

    # The forwarder has no save_state(): nothing of it is written to Redis.
    assert await state_document(redis_client, namespace, FORWARDER_TYPE, "k") is None
    document = await state_document(redis_client, namespace, COUNTER_TYPE, "k")
    assert document is not None
    assert document["state"]["count"] == 6


async def test_concurrent_saves_each_get_their_own_outcome(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    store = StateStore(redis_client, Names(namespace))
    agents = [AgentId("counter", f"k{i}") for i in range(20)]
    first = [AgentRecord(1, {"n": i}, [f"m{i}"]) for i in range(20)]
    await asyncio.gather(*(store.save(a, 0, r) for a, r in zip(agents, first, strict=True)))

    await redis_client.script_flush()  # as after a Redis restart: the script must be loaded again
    second = [AgentRecord(2, {"n": 100 + i}, [f"m{i}", "x"]) for i in range(20)]
    # Every other save expects a version that is not there any more: only those conflict.
    outcomes = await asyncio.gather(
        *(
            store.save(a, 1 if i % 2 else 7, r)
            for i, (a, r) in enumerate(zip(agents, second, strict=True))
        ),
        return_exceptions=True,
    )

    assert [type(o).__name__ for o in outcomes] == ["StateConflict", "NoneType"] * 10
    assert "at version 1, not 7" in str(outcomes[0])
    loaded = [await store.load(a) for a in agents]
    assert [r.state for r in loaded] == [
        {"n": i} if i % 2 == 0 else {"n": 100 + i} for i in range(20)
    ]
    assert [r.version for r in loaded] == [1, 2] * 10


async def test_a_batch_of_saves_reloads_a_script_redis_lost(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    # The first of concurrent saves goes alone and loads the script if Redis lost it; the batch
    # behind it may still find it gone (a flush in between): it must load it and write again
    # only what did not run.
    store = StateStore(redis_client, Names(namespace))
    agents = [AgentId("counter", f"k{i}") for i in range(3)]
    await store.save(agents[0], 0, AgentRecord(1, {"n": 0}))
    await redis_client.script_flush()
    loop = asyncio.get_running_loop()
    batch = [
        (
            Names(namespace).state_key(agent),
            0,
            AgentRecord(1, {"n": i}).to_json(),
            loop.create_future(),
        )
        for i, agent in enumerate(agents)
    ]
    results = await store._write(batch)
    assert results == [1, -1, -1]  # k0 was at version 1 already; k1 and k2 written once
    assert [(await store.load(a)).state for a in agents] == [{"n": 0}, {"n": 1}, {"n": 2}]

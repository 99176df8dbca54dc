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
from agnext_broker.application.broker._redis import (
    AgentRecord,
    Retention,
    StateStore,
    StoredResponse,
    dedup_key,
)
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


def redis_cli(server: RedisServer, *command: str) -> str:
    """``redis-cli -h 127.0.0.1 -p PORT <command>``: what an operator would see."""
    done = subprocess.run(
        ["redis-cli", "-h", server.host, "-p", str(server.port), *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def redis_cli_get(server: RedisServer, key: str) -> str:
    return redis_cli(server, "GET", key)


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

    # The messages it applied, as [source, id], oldest first, and their stored responses.
    source = f"agnext/{runtime.settings.worker_id}"
    applied_key = f"{namespace}:applied:{{{COUNTER_TYPE}/alpha}}"
    printed = await asyncio.to_thread(
        redis_cli, private_redis_server, "ZRANGE", applied_key, "0", "-1"
    )
    applied = [json.loads(line) for line in printed.splitlines() if line]
    wanted = [*ids, "event-1", "read-1"]
    assert [i for _, i in applied if i in wanted] == wanted
    assert {s for s, i in applied if i in wanted} == {source}
    # The stored RPC responses let a retry be answered without applying twice.
    responses_key = f"{namespace}:responses:{{{COUNTER_TYPE}/alpha}}"
    stored = await asyncio.to_thread(
        redis_cli, private_redis_server, "HGET", responses_key, dedup_key(source, "inc-2")
    )
    assert json.loads(json.loads(stored)["data"]) == 6

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


RETENTION = Retention(window=600, ids=100, responses=10)


def store_of(client: redis.asyncio.Redis, namespace: str) -> StateStore:
    return StateStore(client, Names(namespace), RETENTION, "test redis")


async def test_concurrent_saves_each_get_their_own_outcome(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    store = store_of(redis_client, namespace)
    agents = [AgentId("counter", f"k{i}") for i in range(20)]
    empty = AgentRecord()
    first = [empty.applying(f"m{i}", {"n": i}, RETENTION) for i in range(20)]
    await asyncio.gather(
        *(
            store.commit(a, empty, r, f"m{i}", None)
            for i, (a, r) in enumerate(zip(agents, first, strict=True))
        )
    )

    await redis_client.script_flush()  # as after a Redis restart: the script must be loaded again
    stale = AgentRecord(version=7)
    # Every other save expects a version that is not there any more: only those conflict.
    outcomes = await asyncio.gather(
        *(
            store.commit(
                a,
                stale if i % 2 == 0 else r,
                (stale if i % 2 == 0 else r).applying("x", {"n": 100 + i}, RETENTION),
                "x",
                StoredResponse("json", "application/json", str(i)),
            )
            for i, (a, r) in enumerate(zip(agents, first, strict=True))
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
    # The applied messages and responses were recorded with the writes that took.
    assert [list(r.applied) for r in loaded[:2]] == [["m0"], ["m1", "x"]]
    assert await store.response(agents[1], "x") == StoredResponse("json", "application/json", "1")
    assert await store.response(agents[0], "x") is None


async def test_a_batch_of_saves_reloads_a_script_redis_lost(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    # The first of concurrent saves goes alone and loads the script if Redis lost it; the batch
    # behind it may still find it gone (a flush in between): it must load it and write again
    # only what did not run.
    store = store_of(redis_client, namespace)
    agents = [AgentId("counter", f"k{i}") for i in range(3)]
    empty = AgentRecord()
    await store.commit(agents[0], empty, empty.applying("a", {"n": 0}, RETENTION), "a", None)
    await redis_client.script_flush()
    outcomes = await asyncio.gather(
        *(
            store.commit(a, empty, empty.applying("b", {"n": i}, RETENTION), "b", None)
            for i, a in enumerate(agents)
        ),
        return_exceptions=True,
    )
    # k0 was at version 1 already; k1 and k2 written once.
    assert [type(o).__name__ for o in outcomes] == ["StateConflict", "NoneType", "NoneType"]
    assert [(await store.load(a)).state for a in agents] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_applied_messages_are_kept_for_the_window_and_up_to_their_caps(
    redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    retention = Retention(window=600, ids=50, responses=5)
    store = StateStore(redis_client, Names(namespace), retention, "test redis")
    agent = AgentId("counter", "k")
    record = AgentRecord()
    for i in range(60):
        updated = record.applying(f"m{i}", {"n": i}, retention)
        response = StoredResponse("json", "application/json", str(i))
        await store.commit(agent, record, updated, f"m{i}", response)
        record = updated
    loaded = await store.load(agent)
    assert list(loaded.applied) == [f"m{i}" for i in range(10, 60)]  # the last 50, oldest first
    kept = [i for i in range(60) if await store.response(agent, f"m{i}") is not None]
    assert kept == list(range(55, 60))  # responses of the last 5 only

    # Past the window, an applied message is forgotten (Redis' clock decides).
    short = Retention(window=0.3, ids=50, responses=5)
    brief = StateStore(redis_client, Names(namespace), short, "test redis")
    other = AgentId("counter", "brief")
    empty = AgentRecord()
    await brief.commit(other, empty, empty.applying("old", {}, short), "old", None)
    assert list((await brief.load(other)).applied) == ["old"]

    async def forgotten() -> bool:
        return not (await brief.load(other)).applied

    await wait_until(forgotten, timeout=10, what="the applied id leaves the 0.3 s window")

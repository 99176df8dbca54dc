"""1,000 increments to one agent from two client processes count exactly 1,000, also when the
worker hosting the agent is SIGKILLed in the middle (clients retry with the same message id);
a handler that runs again sends its messages again under the same ids, applied once."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import pytest
import redis.asyncio

from agnext_broker import AgentId, TopicId
from tests.integration.apps import (
    COUNTER_TYPE,
    RELAYED_TOPIC,
    Increment,
    ReadCount,
    register_counter_and_relay,
)
from tests.integration.workers import (
    PARTITIONS,
    Process,
    RuntimePool,
    WorkerPool,
    applied_messages,
    live_workers,
    owners,
    runtimes_fixture,  # noqa: F401
    state_document,
    wait_until,
    workers_fixture,  # noqa: F401
)

pytestmark = pytest.mark.integration

KEY = "hot"
PER_CLIENT = 500


async def start_two_workers(workers: WorkerPool, client: redis.asyncio.Redis) -> dict[str, Process]:
    return {w.worker_id: w for w in await workers.start_hosts(client, 2)}


def start_clients(
    workers: WorkerPool, rpc_timeout: float, *, events: bool = False
) -> list[Process]:
    options = ["--key", KEY, "--count", str(PER_CLIENT), "--rpc-timeout", str(rpc_timeout)]
    if events:
        options.append("--events")
    return [
        workers.start_client(name, [*options, "--prefix", name, "--concurrency", "4"])
        for name in ("client1", "client2")
    ]


async def client_results(workers: WorkerPool, clients: list[Process]) -> list[dict[str, Any]]:
    results = []
    for client in clients:
        code = await workers.wait_exit(client, timeout=90)
        assert code == 0, f"{client.name} failed with {code}\n{workers.logs(60)}"
        results.append(json.loads(client.stdout().strip().splitlines()[-1]))
    return results


def partition_of_key() -> int:
    return zlib.crc32(KEY.encode()) & (PARTITIONS - 1)


async def progress(client: redis.asyncio.Redis, namespace: str, at_least: int) -> int:
    """The count in the state document once it is at least ``at_least``, else 0."""
    document = await state_document(client, namespace, COUNTER_TYPE, KEY)
    count = 0 if document is None else int(document["state"]["count"])
    return count if count >= at_least else 0


async def owner_of_key(
    client: redis.asyncio.Redis, namespace: str, hosts: dict[str, Process], workers: WorkerPool
) -> Process:
    owner = (await owners(client, namespace, COUNTER_TYPE))[partition_of_key()]
    assert owner in hosts, f"{KEY}'s partition is owned by {owner!r}\n{workers.logs()}"
    return hosts[owner]


async def kill_owner_midway(
    workers: WorkerPool, client: redis.asyncio.Redis, namespace: str, hosts: dict[str, Process]
) -> tuple[int, Process]:
    """SIGKILL the worker that owns the key's partition once the key has counted 150, and
    check that the clients were not done by then; returns the count then and the worker."""
    count_at_kill = await wait_until(
        lambda: progress(client, namespace, 150),
        timeout=60,
        what=f"{KEY} has counted 150",
        details=workers.logs,
    )
    victim = await owner_of_key(client, namespace, hosts, workers)
    workers.kill(victim)
    assert count_at_kill < 2 * PER_CLIENT, "the clients were all done before the kill"
    return count_at_kill, victim


def summary(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "sent": r["sent"],
            "retries": r["retries"],
            "elapsed": r["elapsed"],
            "errors": r["errors"][:1],
        }
        for r in results
    ]


def assert_answers(results: list[dict[str, Any]]) -> None:
    """Each increment was answered once with the count right after it: together, 1..1000."""
    assert [r["sent"] for r in results] == [PER_CLIENT, PER_CLIENT]
    answers = sorted(a for r in results for a in r["answers"])
    assert answers == list(range(1, 2 * PER_CLIENT + 1)), (
        f"duplicates: {sorted({a for a in answers if answers.count(a) > 1})[:20]}, "
        f"missing: {sorted(set(range(1, 2 * PER_CLIENT + 1)) - set(answers))[:20]}"
    )


async def assert_counted_exactly(
    runtimes: RuntimePool, client: redis.asyncio.Redis, namespace: str, expected: int
) -> None:
    reader = await runtimes.start(rpc_timeout=20.0)
    assert await reader.send_message(ReadCount(), AgentId(COUNTER_TYPE, KEY)) == expected
    document = await state_document(client, namespace, COUNTER_TYPE, KEY)
    assert document is not None
    assert document["state"]["count"] == expected


@pytest.mark.integration
async def test_two_clients_count_exactly(
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    namespace: str,
) -> None:
    await start_two_workers(workers, redis_client)
    results = await client_results(workers, start_clients(workers, rpc_timeout=3.0))
    print(f"clients: {summary(results)}")
    assert_answers(results)
    await assert_counted_exactly(runtimes, redis_client, namespace, 2 * PER_CLIENT)


@pytest.mark.integration
async def test_two_clients_count_exactly_when_the_worker_is_killed(
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    namespace: str,
) -> None:
    hosts = await start_two_workers(workers, redis_client)
    # Failover takes about worker_expiry (2 s): with 1 s RPC timeouts the RPCs in flight at the
    # kill time out and are retried with their message ids.
    clients = start_clients(workers, rpc_timeout=1.0)

    count_at_kill, victim = await kill_owner_midway(workers, redis_client, namespace, hosts)
    killed_at = time.monotonic()
    owner = victim.worker_id

    partition = partition_of_key()

    async def taken_over() -> bool:
        current = (await owners(redis_client, namespace, COUNTER_TYPE))[partition]
        return (
            current is not None
            and current != owner
            and current in await live_workers(redis_client, namespace)
        )

    await wait_until(taken_over, timeout=20, what="another worker owns the partition")
    print(f"partition {partition} taken over {time.monotonic() - killed_at:.2f} s after SIGKILL")

    results = await client_results(workers, clients)
    print(f"count at kill: {count_at_kill}; clients: {summary(results)}")
    assert sum(r["retries"] for r in results) > 0, "no RPC was retried: the kill changed nothing"
    assert_answers(results)
    await assert_counted_exactly(runtimes, redis_client, namespace, 2 * PER_CLIENT)


@pytest.mark.integration
async def test_two_publishers_count_exactly_when_the_worker_is_killed(
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    namespace: str,
) -> None:
    """Events: delivered at least once (a killed worker's unacknowledged deliveries come back),
    applied once (by their message ids)."""
    hosts = await start_two_workers(workers, redis_client)
    clients = start_clients(workers, rpc_timeout=3.0, events=True)
    count_at_kill, _ = await kill_owner_midway(workers, redis_client, namespace, hosts)
    results = await client_results(workers, clients)
    assert [r["sent"] for r in results] == [PER_CLIENT, PER_CLIENT]

    document = await wait_until(
        lambda: progress(redis_client, namespace, 2 * PER_CLIENT),
        timeout=60,
        what=f"{KEY} has counted {2 * PER_CLIENT}",
        details=workers.logs,
    )
    print(f"count at kill: {count_at_kill}; final count {document}")
    await assert_counted_exactly(runtimes, redis_client, namespace, 2 * PER_CLIENT)


@pytest.mark.integration
async def test_a_handler_run_again_sends_the_same_messages_once(
    runtimes: RuntimePool, redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    # The relay's event handler passes 5 on to counter/k, then fails; its second attempt passes
    # the same message on again: the counter recognises its id and counts 5, not 10.
    runtime = await runtimes.start(register_counter_and_relay)
    await runtime.publish_message(Increment(5), TopicId(RELAYED_TOPIC, "k"))

    # The relay's record is written only when a run of its handler succeeds: the second one.
    relay = await wait_until(
        lambda: state_document(redis_client, namespace, "relay", "k"),
        timeout=30,
        what="the relay handled the event",
    )
    assert len(await applied_messages(redis_client, namespace, "relay", "k")) == 1
    assert relay["state"] == {"relayed": 1}  # the failed run's change was not kept
    assert await runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, "k")) == 5
    counter = await state_document(redis_client, namespace, COUNTER_TYPE, "k")
    assert counter is not None
    assert counter["state"]["count"] == 5
    # the relayed increment (once) and the ReadCount
    assert len(await applied_messages(redis_client, namespace, COUNTER_TYPE, "k")) == 2

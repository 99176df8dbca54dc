"""What the registry in Redis says about workers and agent types: liveness judged on Redis'
clock (a worker whose clock is an hour off is still live), no stale worker left once it is
gone, and per agent type only the message types its handlers take."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis.asyncio

from agnext_broker import AgentId
from agnext_broker.application.broker._names import Names
from tests.integration.apps import COUNTER_TYPE, FRAGILE_TYPE, GetStatus
from tests.integration.workers import (
    HEARTBEAT_INTERVAL,
    REPO_ROOT,
    WORKER_EXPIRY,
    RuntimePool,
    WorkerPool,
    live_workers,
    runtimes_fixture,  # noqa: F401
    shared_owners,
    wait_until,
    workers_fixture,  # noqa: F401
)

pytestmark = pytest.mark.integration

SKEW_SECONDS = -3600.0


def skewed_clock(directory: Path) -> str:
    """A PYTHONPATH whose sitecustomize sets ``time.time()`` an hour back (as on a machine
    whose clock is wrong), with the repository after it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        "import time\n_real = time.time\ntime.time = lambda: _real() + " + repr(SKEW_SECONDS) + "\n"
    )
    return f"{directory}:{REPO_ROOT}"


async def test_a_worker_whose_clock_is_an_hour_off_is_live_and_takes_over(
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    tmp_path: Path,
) -> None:
    skewed = workers.start_worker(env={"PYTHONPATH": skewed_clock(tmp_path / "skew")})
    await workers.wait_registered(redis_client, skewed)
    await shared_owners(
        redis_client, workers.namespace, COUNTER_TYPE, {skewed.worker_id}, timeout=20
    )
    normal = workers.start_worker()
    await workers.wait_registered(redis_client, normal)
    # They share the partitions, and keep sharing them: neither thinks the other dead.
    both = {skewed.worker_id, normal.worker_id}
    await shared_owners(
        redis_client,
        workers.namespace,
        COUNTER_TYPE,
        both,
        timeout=30,
        stable_for=4 * WORKER_EXPIRY,
        details=workers.logs,
    )
    assert await live_workers(redis_client, workers.namespace) == both

    workers.kill(normal)  # SIGKILL: the skewed worker takes over once its heartbeat expires
    await shared_owners(
        redis_client,
        workers.namespace,
        COUNTER_TYPE,
        {skewed.worker_id},
        timeout=10 * WORKER_EXPIRY,
        details=workers.logs,
    )
    client = await runtimes.start(rpc_timeout=15.0)
    status = await client.send_message(GetStatus(), AgentId(COUNTER_TYPE, "any"))
    assert status.pid == skewed.pid


async def test_no_stale_worker_is_left_in_the_registry(
    workers: WorkerPool, redis_client: redis.asyncio.Redis
) -> None:
    workers_key = Names(workers.namespace).workers_key
    info_key = Names(workers.namespace).worker_info_key
    first, second, third = await workers.start_hosts(redis_client, 3)

    assert await workers.terminate(first) == 0  # leaves at the end of its drain
    assert await redis_client.zscore(workers_key, first.worker_id) is None
    assert not await redis_client.hexists(info_key, first.worker_id)

    workers.kill(second)  # no goodbye: its entry is dropped once it expired
    started = time.monotonic()

    async def dropped() -> bool:
        members = await redis_client.zrange(workers_key, 0, -1)
        fields = await redis_client.hkeys(info_key)
        return second.worker_id.encode() not in members + fields

    await wait_until(dropped, timeout=WORKER_EXPIRY + 10, what="the killed worker's entries go")
    waited = time.monotonic() - started
    assert waited < WORKER_EXPIRY + 4 * HEARTBEAT_INTERVAL + 5, waited
    assert await live_workers(redis_client, workers.namespace) == {third.worker_id}


async def test_each_agent_type_records_the_message_types_its_handlers_take(
    workers: WorkerPool, redis_client: redis.asyncio.Redis
) -> None:
    worker = workers.start_worker("register_counter_and_fragile")
    await workers.wait_registered(redis_client, worker)
    types = {
        (k.decode() if isinstance(k, bytes) else k): json.loads(v)
        for k, v in (await redis_client.hgetall(Names(workers.namespace).types_key)).items()
    }
    assert types[FRAGILE_TYPE]["message_types"] == ["Increment"]
    assert types[COUNTER_TYPE]["message_types"] == [
        "Blob",
        "Explode",
        "GetStatus",
        "Increment",
        "Nap",
        "ReadCount",
    ]
    assert types[COUNTER_TYPE]["partitions"] == types[FRAGILE_TYPE]["partitions"] == 4

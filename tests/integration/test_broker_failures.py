"""What a caller sees when nobody can answer: unhosted agent types fail at once, an RPC to a
worker that dies is answered by the new owner or times out with a clear message, never hangs."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import zlib
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from agnext_broker import AgentId, CancellationToken, UndeliverableException
from tests.integration.apps import COUNTER_TYPE, Increment, Nap, ReadCount, Status, register_counter
from tests.integration.workers import (
    HEARTBEAT_INTERVAL,
    PARTITIONS,
    WORKER_EXPIRY,
    Process,
    RuntimePool,
    WorkerPool,
    live_workers,
    owners,
    runtimes_fixture,  # noqa: F401
    wait_until,
    workers_fixture,  # noqa: F401
)

pytestmark = pytest.mark.integration

RPC_TIMEOUT = 3.0
TIMEOUT_MESSAGE = rf"No response from {COUNTER_TYPE}/(\w+) within 3 s \(message [^)]+\); it may"


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) & (PARTITIONS - 1)


async def timed_undeliverable(send: Awaitable[Any]) -> float:
    """Seconds until ``send`` raised UndeliverableException (a LookupError)."""
    started = time.monotonic()
    with pytest.raises(UndeliverableException) as caught:
        await send
    elapsed = time.monotonic() - started
    assert isinstance(caught.value, LookupError)
    return elapsed


@pytest.mark.integration
async def test_send_to_unhosted_type_fails_at_once(runtimes: RuntimePool) -> None:
    worker = await runtimes.start(register_counter)
    client = await runtimes.start(rpc_timeout=30.0)

    # A type no worker ever hosted.
    first = await timed_undeliverable(client.send_message(ReadCount(), AgentId("nobody", "x")))
    again = await timed_undeliverable(client.send_message(ReadCount(), AgentId("nobody", "y")))
    with pytest.raises(UndeliverableException, match="nobody"):
        await client.send_message(ReadCount(), AgentId("nobody", "z"))

    # A type whose only worker left (once the client's view of live workers, refreshed every
    # heartbeat, has seen it leave).
    assert await client.send_message(Increment(1), AgentId(COUNTER_TYPE, "a")) == 1
    await runtimes.stop(worker)
    await asyncio.sleep(2 * HEARTBEAT_INTERVAL)
    left = await timed_undeliverable(client.send_message(ReadCount(), AgentId(COUNTER_TYPE, "a")))
    print(f"UndeliverableException after {first:.3f} s, {again:.3f} s, {left:.3f} s")
    assert max(first, again, left) < 1.0


async def _host_of(
    workers: WorkerPool, client: redis.asyncio.Redis, hosts: list[Process], key: str
) -> Process:
    owner = (await owners(client, workers.namespace, COUNTER_TYPE))[partition_of(key)]
    by_id = {w.worker_id: w for w in hosts}
    assert owner in by_id, f"{key}'s partition is owned by {owner!r}\n{workers.logs()}"
    return by_id[owner]


@pytest.mark.integration
async def test_rpc_to_a_worker_killed_mid_handler_is_answered_or_times_out(
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    tmp_path: Path,
) -> None:
    hosts = await workers.start_hosts(redis_client, 2)
    client = await runtimes.start(rpc_timeout=RPC_TIMEOUT)
    key = "sleepy"
    agent = AgentId(COUNTER_TYPE, key)
    assert await client.send_message(Increment(5), agent) == 5
    victim = await _host_of(workers, redis_client, hosts, key)
    survivor = next(w for w in hosts if w is not victim)

    marker = tmp_path / "napping"
    started = time.monotonic()
    call = asyncio.ensure_future(
        client.send_message(Nap(2.0, str(marker)), agent, message_id="nap-1")
    )
    await wait_until(lambda: asyncio.sleep(0, marker.exists()), timeout=15, what="the handler runs")
    assert marker.read_text().strip() == str(victim.pid)
    workers.kill(victim)
    killed_at = time.monotonic()
    outcome: object
    try:
        outcome = await asyncio.wait_for(call, RPC_TIMEOUT + 10)
    except TimeoutError as e:
        outcome = e
    elapsed = time.monotonic() - started
    if isinstance(outcome, TimeoutError):
        # A clear message (not the bare TimeoutError of a wait that never ends), in time.
        assert re.match(TIMEOUT_MESSAGE, str(outcome)), f"unclear timeout: {outcome!r}"
        assert f"{COUNTER_TYPE}/{key}" in str(outcome)
        assert "nap-1" in str(outcome)
        assert elapsed < RPC_TIMEOUT + 5, f"the RPC took {elapsed:.1f} s to time out"
        print(f"the RPC timed out {elapsed:.2f} s after it was sent: {outcome}")
    else:
        assert isinstance(outcome, Status)
        assert outcome.pid == survivor.pid
        print(f"the RPC was answered by the new owner {elapsed:.2f} s after it was sent")

    # A retry with the same message id is answered by the new owner (the handler's saved
    # state and its stored response), however long failover takes.
    async def answered() -> Status | None:
        try:
            status = await client.send_message(Nap(2.0, str(marker)), agent, message_id="nap-1")
        except TimeoutError:
            return None
        assert isinstance(status, Status)
        return status

    status = await wait_until(
        answered, timeout=40, what="the retry is answered", details=workers.logs
    )
    print(f"the retry was answered {time.monotonic() - killed_at:.2f} s after SIGKILL")
    assert status.pid == survivor.pid
    assert status.count == 5
    assert await client.send_message(ReadCount(), agent) == 5


@pytest.mark.integration
async def test_rpc_to_the_only_worker_killed_mid_handler_fails_once_it_is_gone(
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    namespace: str,
    tmp_path: Path,
) -> None:
    only = workers.start_worker()
    await workers.wait_registered(redis_client, only)
    client = await runtimes.start(rpc_timeout=30.0)
    agent = AgentId(COUNTER_TYPE, "alone")
    marker = tmp_path / "napping"
    call = asyncio.ensure_future(client.send_message(Nap(5.0, str(marker)), agent))
    await wait_until(lambda: asyncio.sleep(0, marker.exists()), timeout=15, what="the handler runs")
    workers.kill(only)
    killed = time.monotonic()
    # No worker hosts the type any more once the killed one's registration expires: the caller
    # learns it then, not after its 30 s timeout.
    with pytest.raises(UndeliverableException, match="any more; the request to counter/alone"):
        await asyncio.wait_for(call, 30.0)
    elapsed = time.monotonic() - killed
    assert elapsed < WORKER_EXPIRY + 4 * HEARTBEAT_INTERVAL, f"it took {elapsed:.1f} s"

    # Once the worker's registration expires, sends fail at once instead of waiting.
    async def gone() -> bool:
        return only.worker_id not in await live_workers(redis_client, namespace)

    await wait_until(gone, timeout=10, what="the killed worker's registration expires")
    await asyncio.sleep(2 * HEARTBEAT_INTERVAL)  # the client's view refreshes every heartbeat
    elapsed = await timed_undeliverable(client.send_message(ReadCount(), agent))
    assert elapsed < 1.0


@pytest.mark.integration
async def test_rpc_that_outlives_its_timeout_fails_with_a_clear_error(
    workers: WorkerPool, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    worker = workers.start_worker()
    await workers.wait_registered(redis_client, worker)
    client = await runtimes.start(rpc_timeout=RPC_TIMEOUT)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=TIMEOUT_MESSAGE):
        await client.send_message(Nap(RPC_TIMEOUT + 3), AgentId(COUNTER_TYPE, "slow"))
    assert time.monotonic() - started < RPC_TIMEOUT + 2


@pytest.mark.integration
async def test_cancelled_rpc_whose_handler_ignores_its_token_is_cancelled_after_a_grace(
    runtimes: RuntimePool, tmp_path: Path
) -> None:
    await runtimes.start(register_counter)
    client = await runtimes.start(rpc_timeout=60.0)
    agent = AgentId(COUNTER_TYPE, "stubborn")
    marker = tmp_path / "napping"
    token = CancellationToken()
    call = asyncio.ensure_future(
        client.send_message(Nap(50.0, str(marker)), agent, cancellation_token=token)
    )
    await wait_until(lambda: asyncio.sleep(0, marker.exists()), timeout=15, what="the handler runs")
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    # The nap (which never looks at its token) is cut short: the agent's next turns come at
    # once, and its worker goes on handling and saving as before.
    started = time.monotonic()
    assert await client.send_message(Increment(2), agent) == 2
    assert await client.send_message(Increment(3), agent) == 5
    assert time.monotonic() - started < 20
    assert (await client.send_message(Nap(0.0), agent)).count == 5


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_a_second_sigterm_during_the_drain_ends_the_worker_at_once_and_loses_nothing(
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
    tmp_path: Path,
) -> None:
    # A drain that would take long: the victim's handler naps for 30 s, within drain_timeout.
    workers.env = {"AGNEXT_DRAIN_TIMEOUT": "120"}
    hosts = await workers.start_hosts(redis_client, 2)
    client = await runtimes.start(rpc_timeout=120.0)
    key = "drowsy"
    agent = AgentId(COUNTER_TYPE, key)
    assert await client.send_message(Increment(3), agent) == 3
    victim = await _host_of(workers, redis_client, hosts, key)
    survivor = next(w for w in hosts if w is not victim)

    marker = tmp_path / "napping"
    call = asyncio.ensure_future(
        client.send_message(Nap(30.0, str(marker)), agent, message_id="long-nap")
    )
    await wait_until(lambda: asyncio.sleep(0, marker.exists()), timeout=15, what="the nap began")
    victim.process.terminate()
    await wait_until(
        lambda: asyncio.sleep(0, "second signal exits now" in victim.log()),
        timeout=15,
        what="the victim drains",
    )
    assert victim.alive  # still draining: its handler naps
    victim.process.terminate()  # the second SIGTERM: no more waiting
    second = time.monotonic()
    code = await workers.wait_exit(victim, timeout=10)
    print(f"exited {time.monotonic() - second:.2f} s after the second SIGTERM, code {code}")
    assert code == 128 + signal.SIGTERM
    assert "exiting now" in victim.log()

    # Its unacknowledged request is delivered again to the survivor, which answers it (the nap
    # runs again there); the caller never sees the stop.
    marker.unlink()
    status = await asyncio.wait_for(call, 110)
    assert isinstance(status, Status)
    assert status.pid == survivor.pid
    assert status.count == 3

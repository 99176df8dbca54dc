"""No call waits forever: sends and publishes while RabbitMQ is down end by their own bounds (or
their caller's token), start-up failures end within ``connect_timeout`` with one clear error,
the worker command exits promptly, and many concurrent calls hold a bounded number in flight."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio

from agnext_broker import (
    AccessRefusedError,
    AgentId,
    CancellationToken,
    PublishTimeoutError,
    RpcTimeoutError,
    ServiceUnavailableError,
    TopicId,
)
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Increment,
    ReadCount,
    register_counter,
)
from tests.integration.workers import (
    Process,
    RuntimePool,
    WorkerPool,
    bounded,
    broker_settings,
    runtimes_fixture,  # noqa: F401
    wait_until,
    workers_fixture,  # noqa: F401
)
from tests.servers import AnyRabbitMQ, AnyRedis, RabbitMQServer, RedisServer, free_port

pytestmark = pytest.mark.integration


async def timed(call: Awaitable[Any], what: str, bound: float = 60.0) -> tuple[Any, float]:
    """(what ``call`` returned or the exception it raised, seconds it took); fails if it takes
    longer than ``bound`` (a call that never ends)."""
    started = time.monotonic()
    try:
        outcome = await bounded(call, what, bound)
    except AssertionError:
        raise
    except Exception as e:
        outcome = e
    return outcome, time.monotonic() - started


def session_of(runtime: BrokerAgentRuntime) -> Any:
    session = runtime._session
    assert session is not None, "the runtime has no session: is it started?"
    return session


async def answered_again(
    client: BrokerAgentRuntime, agent: AgentId, amount: int, message_id: str
) -> int:
    """Send ``Increment(amount)`` (always with ``message_id``, so it is applied once) until the
    broker answers again."""
    failures: list[str] = []

    async def answer() -> int | None:
        try:
            return int(await client.send_message(Increment(amount), agent, message_id=message_id))
        except (TimeoutError, ServiceUnavailableError) as e:
            failures.append(f"{type(e).__name__}: {e}")
            return None

    return await wait_until(
        answer,
        timeout=90,
        what=f"{agent} answers again",
        details=lambda: "\n".join(failures[-5:]),
        period=0.5,
    )


# -- a: calls while RabbitMQ is down end by their bounds ---------------------------------------


@pytest.mark.timeout(300)
async def test_send_and_publish_time_out_while_rabbitmq_is_down_then_work_again(
    runtimes: RuntimePool, private_rabbitmq: RabbitMQServer
) -> None:
    worker = await runtimes.start(register_counter)
    client = await runtimes.start(rpc_timeout=3.0, publish_timeout=2.0)
    agent = AgentId(COUNTER_TYPE, "outage")
    assert await client.send_message(Increment(1), agent) == 1

    await private_rabbitmq.astop()

    sent, send_seconds = await timed(
        client.send_message(Increment(100), agent), "a send while RabbitMQ is down"
    )
    print(f"send while down: {type(sent).__name__} after {send_seconds:.2f} s: {sent}")
    assert isinstance(sent, RpcTimeoutError), f"expected RpcTimeoutError, got {sent!r}"
    assert isinstance(sent, TimeoutError)
    assert 2.5 <= send_seconds < 8.0, f"the send ended after {send_seconds:.2f} s"

    published, publish_seconds = await timed(
        client.publish_message(Increment(1000), TopicId(INCREMENTS_TOPIC, agent.key)),
        "a publish while RabbitMQ is down",
    )
    print(f"publish while down: {type(published).__name__} after {publish_seconds:.2f} s")
    assert isinstance(published, PublishTimeoutError), f"got {published!r}"
    assert isinstance(published, TimeoutError)
    assert 1.5 <= publish_seconds < 7.0, f"the publish ended after {publish_seconds:.2f} s"

    await private_rabbitmq.astart()

    # The same runtimes answer again once they reconnected. The calls that timed out were
    # never confirmed; had they gone out after all, they count once each.
    count = await answered_again(client, agent, 1, "after-outage-1")
    assert count - 2 in (0, 100, 1000, 1100), f"unexpected count {count}"
    assert await client.send_message(ReadCount(), agent) == count
    assert await worker.send_message(ReadCount(), agent) == count
    await client.publish_message(Increment(7), TopicId(INCREMENTS_TOPIC, agent.key))

    async def counted() -> bool:
        return await client.send_message(ReadCount(), agent) == count + 7

    await wait_until(counted, timeout=30, what="the event published after the outage is counted")


# -- b: a caller's token ends a send at once, also while the broker is down ----------------------


@pytest.mark.timeout(300)
async def test_cancelling_a_send_ends_it_at_once_while_rabbitmq_is_down(
    runtimes: RuntimePool, private_rabbitmq: RabbitMQServer
) -> None:
    await runtimes.start(register_counter)
    client = await runtimes.start(rpc_timeout=30.0)
    agent = AgentId(COUNTER_TYPE, "cancelled")
    assert await client.send_message(Increment(1), agent) == 1
    session = session_of(client)

    await private_rabbitmq.astop()

    token = CancellationToken()
    call = asyncio.ensure_future(client.send_message(Increment(5), agent, cancellation_token=token))
    await wait_until(
        lambda: asyncio.sleep(0, session.transport.in_flight > 0),
        timeout=10,
        what="the send waits for the connection to publish its request",
    )
    assert not call.done()
    cancelled_at = time.monotonic()
    token.cancel()
    done, _ = await asyncio.wait({call}, timeout=15)
    elapsed = time.monotonic() - cancelled_at
    assert call in done, "the cancelled send was still waiting 15 s after its token was cancelled"
    print(f"the cancelled send ended {elapsed:.3f} s after its token was cancelled")
    assert call.cancelled(), f"expected CancelledError, the send ended with {call!r}"
    assert elapsed < 3.0
    assert session.rpc.waiting == 0
    # What is still in flight is the notice that tells the recipient's worker of the cancel,
    # sent in the background: bounded too (5 s), it gives up while the broker stays down.
    await wait_until(
        lambda: asyncio.sleep(0, session.transport.in_flight == 0),
        timeout=10,
        what="the cancel notice gives up while RabbitMQ is down",
    )

    await private_rabbitmq.astart()
    count = await answered_again(client, agent, 2, "after-cancel-1")
    assert count in (3, 8), f"unexpected count {count}"


# -- c: start-up failures end within connect_timeout, with one clear error -----------------------


async def start_failure(settings: BrokerSettings) -> tuple[BaseException, float]:
    """The error ``await runtime.start()`` raised, and after how many seconds."""
    runtime = BrokerAgentRuntime(settings)
    try:
        outcome, elapsed = await timed(runtime.start(), "runtime.start()", 60)
        assert isinstance(outcome, BaseException), "the runtime started"
        print(f"start failed after {elapsed:.2f} s: {type(outcome).__name__}: {outcome}")
        return outcome, elapsed
    finally:
        await bounded(runtime.close(), "runtime.close()")


def _settings(
    rabbitmq: AnyRabbitMQ, redis_server: AnyRedis, namespace: str, **changes: Any
) -> BrokerSettings:
    values: dict[str, Any] = {
        "amqp_url": rabbitmq.amqp_url,
        "redis_url": redis_server.redis_url,
        "connect_timeout": 2.0,
        "rpc_timeout": 5.0,
        **changes,
    }
    amqp_url, redis_url = values.pop("amqp_url"), values.pop("redis_url")
    return broker_settings(amqp_url, redis_url, namespace, **values)


async def test_unreachable_rabbitmq_fails_start_within_connect_timeout(
    rabbitmq: AnyRabbitMQ, redis_server: AnyRedis, namespace: str, redis_client: redis.asyncio.Redis
) -> None:
    port = free_port()
    url = f"amqp://agent:s3cr3t-pw@127.0.0.1:{port}/"
    settings = _settings(rabbitmq, redis_server, namespace, amqp_url=url)
    error, elapsed = await start_failure(settings)
    assert isinstance(error, ServiceUnavailableError), repr(error)
    assert not isinstance(error, AccessRefusedError), repr(error)
    assert elapsed < 6.0, f"start() failed after {elapsed:.2f} s"
    message = str(error)
    assert "RabbitMQ" in message
    assert f"amqp://agent:***@127.0.0.1:{port}/" in message
    assert "s3cr3t-pw" not in message
    assert "\n" not in message

    # A send on the runtime that could not start fails at once instead of waiting.
    runtime = BrokerAgentRuntime(settings)
    try:
        with pytest.raises(ServiceUnavailableError):
            await runtime.start()
        sent, seconds = await timed(
            runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, "x")), "send after failure"
        )
        assert isinstance(sent, ServiceUnavailableError), repr(sent)
        assert seconds < 1.0
    finally:
        await bounded(runtime.close(), "runtime.close()")


async def test_wrong_rabbitmq_password_is_refused_at_once(
    private_rabbitmq: RabbitMQServer,
    redis_server: AnyRedis,
    namespace: str,
    redis_client: redis.asyncio.Redis,
) -> None:
    url = f"amqp://guest:not-the-password@127.0.0.1:{private_rabbitmq.port}/"
    settings = _settings(private_rabbitmq, redis_server, namespace, amqp_url=url)
    error, elapsed = await start_failure(settings)
    assert isinstance(error, AccessRefusedError), repr(error)
    assert isinstance(error, PermissionError)
    assert elapsed < 3.0, f"start() failed after {elapsed:.2f} s"
    message = str(error)
    assert "'guest'" in message
    assert "RabbitMQ" in message
    assert "not-the-password" not in message


async def test_missing_vhost_is_refused_naming_it(
    private_rabbitmq: RabbitMQServer,
    redis_server: AnyRedis,
    namespace: str,
    redis_client: redis.asyncio.Redis,
) -> None:
    vhost = f"{namespace}-nowhere"
    url = f"amqp://guest:guest@127.0.0.1:{private_rabbitmq.port}/{vhost}"
    settings = _settings(private_rabbitmq, redis_server, namespace, amqp_url=url)
    error, elapsed = await start_failure(settings)
    assert isinstance(error, AccessRefusedError), repr(error)
    assert elapsed < 3.0, f"start() failed after {elapsed:.2f} s"
    message = str(error)
    assert vhost in message
    assert "vhost was not found or the user has no permissions on it" in message


async def test_unreachable_redis_fails_start_within_connect_timeout(
    rabbitmq: AnyRabbitMQ, redis_server: AnyRedis, namespace: str, redis_client: redis.asyncio.Redis
) -> None:
    port = free_port()
    settings = _settings(rabbitmq, redis_server, namespace, redis_url=f"redis://127.0.0.1:{port}/0")
    error, elapsed = await start_failure(settings)
    assert isinstance(error, ServiceUnavailableError), repr(error)
    assert not isinstance(error, AccessRefusedError), repr(error)
    assert elapsed < 6.0, f"start() failed after {elapsed:.2f} s"
    message = str(error)
    assert "Redis" in message
    assert f"127.0.0.1:{port}" in message


async def test_wrong_redis_password_is_refused(
    rabbitmq: AnyRabbitMQ,
    private_redis_server: RedisServer,
    namespace: str,
    redis_client: redis.asyncio.Redis,
) -> None:
    user = f"{namespace}-user"
    await redis_client.acl_setuser(
        user, enabled=True, passwords=["+the-right-one"], categories=["+@all"], keys=["*"]
    )
    try:
        url = f"redis://{user}:the-wrong-one@127.0.0.1:{private_redis_server.port}/0"
        settings = _settings(rabbitmq, private_redis_server, namespace, redis_url=url)
        error, elapsed = await start_failure(settings)
        assert isinstance(error, AccessRefusedError), repr(error)
        assert elapsed < 3.0, f"start() failed after {elapsed:.2f} s"
        message = str(error)
        assert "Redis" in message
        assert user in message
        assert "the-wrong-one" not in message
    finally:
        await redis_client.acl_deluser(user)


# -- d: the worker command ---------------------------------------------------------------------


def log_entries(process: Process) -> list[dict[str, Any]]:
    entries = []
    for line in process.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


async def test_worker_command_exits_when_rabbitmq_cannot_be_reached(workers: WorkerPool) -> None:
    port = free_port()
    started = time.monotonic()
    worker = workers.start_worker(
        env={
            "AGNEXT_AMQP_URL": f"amqp://guest:hidden-pw@127.0.0.1:{port}/",
            "AGNEXT_CONNECT_TIMEOUT": "2",
        }
    )
    code = await workers.wait_exit(worker, timeout=30)
    elapsed = time.monotonic() - started
    print(f"the worker exited with {code} after {elapsed:.2f} s\n{worker.log()}")
    assert code == 1
    assert elapsed < 10.0
    errors = [e["message"] for e in log_entries(worker) if e.get("level") == "error"]
    clear = [
        m
        for m in errors
        if f"127.0.0.1:{port}" in m and "RabbitMQ" in m and "cannot be reached" in m
    ]
    assert clear, f"no error line names the server and the cause:\n{worker.log()}"
    assert "hidden-pw" not in worker.log()


async def _signal_while_connecting(workers: WorkerPool, signum: signal.Signals) -> None:
    worker = workers.start_worker(
        env={
            "AGNEXT_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
            "AGNEXT_CONNECT_TIMEOUT": "60",
        }
    )
    await wait_until(
        lambda: asyncio.sleep(0, "starting broker runtime" in worker.log()),
        timeout=30,
        what="the worker logs that it is starting",
        details=worker.log,
    )
    assert worker.alive
    sent_at = time.monotonic()
    os.kill(worker.pid, signum)
    code = await workers.wait_exit(worker, timeout=30)
    elapsed = time.monotonic() - sent_at
    print(f"{signum.name}: the worker exited with {code} after {elapsed:.2f} s")
    assert elapsed < 5.0, f"the worker took {elapsed:.2f} s to exit after {signum.name}"
    assert code == 1, f"exit code {code}\n{worker.log()}"


async def test_worker_command_exits_on_sigterm_while_connecting(workers: WorkerPool) -> None:
    await _signal_while_connecting(workers, signal.SIGTERM)


async def test_worker_command_exits_on_sigint_while_connecting(workers: WorkerPool) -> None:
    await _signal_while_connecting(workers, signal.SIGINT)


async def test_worker_command_refuses_an_invalid_setting(workers: WorkerPool) -> None:
    worker = workers.start_worker(env={"AGNEXT_PARTITIONS": "abc"})
    code = await workers.wait_exit(worker, timeout=30)
    assert code == 2, f"exit code {code}\n{worker.log()}"
    assert "AGNEXT_PARTITIONS" in worker.log()


# -- e: backpressure -----------------------------------------------------------------------------


class Peak:
    """Samples ``read()`` at every turn of the event loop while running; ``highest`` is the
    largest value seen."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read
        self.highest = 0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.highest = max(self.highest, self._read())
            self.samples += 1
            await asyncio.sleep(0)

    def __enter__(self) -> Peak:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def failures(results: list[Any]) -> list[str]:
    return [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]


@pytest.mark.timeout(300)
async def test_publishes_in_flight_stay_within_max_in_flight_publishes(
    workers: WorkerPool, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    await workers.start_hosts(redis_client, 1)
    client = await runtimes.start(max_in_flight_publishes=16, publish_timeout=120.0)
    session = session_of(client)
    agent = AgentId(COUNTER_TYPE, "pressed")
    topic = TopicId(INCREMENTS_TOPIC, agent.key)
    total = 3000

    with Peak(lambda: session.transport.in_flight) as peak:
        started = time.monotonic()
        results = await bounded(
            asyncio.gather(
                *(client.publish_message(Increment(1), topic) for _ in range(total)),
                return_exceptions=True,
            ),
            "3000 publishes",
            150,
        )
        elapsed = time.monotonic() - started
    print(
        f"{total} publishes in {elapsed:.2f} s; at most {peak.highest} in flight "
        f"({peak.samples} samples)"
    )
    assert not failures(results), failures(results)[:5]
    assert peak.highest <= 16, f"{peak.highest} publishes were in flight at once"
    assert peak.highest > 1, "the sampler never saw the publishes in flight"
    assert session.transport.in_flight == 0

    last: list[int] = []

    async def all_counted() -> bool:
        last[:] = [await client.send_message(ReadCount(), agent)]
        return last[0] == total

    await wait_until(
        all_counted,
        timeout=150,
        what=f"the counter counts {total} events",
        details=lambda: f"count: {last}\n{workers.logs()}",
        period=0.5,
    )


@pytest.mark.timeout(300)
async def test_rpcs_waiting_stay_within_max_pending_rpcs(
    workers: WorkerPool, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    await workers.start_hosts(redis_client, 1)
    client = await runtimes.start(max_pending_rpcs=8, rpc_timeout=120.0)
    session = session_of(client)
    agent = AgentId(COUNTER_TYPE, "queued")
    total = 200

    with Peak(lambda: session.rpc.waiting) as peak:
        results = await bounded(
            asyncio.gather(
                *(client.send_message(Increment(1), agent) for _ in range(total)),
                return_exceptions=True,
            ),
            "200 sends",
            150,
        )
    print(f"{total} sends; at most {peak.highest} waiting ({peak.samples} samples)")
    assert not failures(results), failures(results)[:5]
    assert peak.highest <= 8, f"{peak.highest} RPCs were pending at once"
    assert peak.highest > 1, "the sampler never saw the RPCs pending"
    # Every increment was applied once and answered with the count it made.
    assert sorted(results) == list(range(1, total + 1))
    assert session.rpc.waiting == 0
    assert await client.send_message(ReadCount(), agent) == total

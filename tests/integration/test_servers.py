"""The test harness: private RabbitMQ and Redis servers that tests can stop, kill and restart.

The fault tests need the private servers; with AGNEXT_TEST_AMQP_URL / AGNEXT_TEST_REDIS_URL set
they fail with ``PrivateServerRequired``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest
import redis.asyncio

from tests.servers import (
    RESERVED_PORTS,
    AmqpCleanup,
    AnyRabbitMQ,
    AnyRedis,
    ExternalRabbitMQ,
    ExternalRedis,
    PrivateServerRequired,
    RabbitMQServer,
    RedisServer,
    sweep_stale_servers,
)

pytestmark = pytest.mark.integration


def _beam_pids() -> set[int]:
    """Every ``beam.smp`` on the machine (the system's RabbitMQ included)."""
    pids = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as f:
                    if f.read().strip() == "beam.smp":
                        pids.add(int(name))
            except OSError:
                pass
    return pids


def _other_beams(rabbitmq: RabbitMQServer) -> set[int]:
    """The ``beam.smp`` processes that are not our node's (the system's RabbitMQ, ...)."""
    return {pid for pid in _beam_pids() if pid != rabbitmq.pid}


async def _publish(url: str, queue_name: str, bodies: list[bytes], *, durable: bool) -> None:
    """Declare the queue and publish to it with publisher confirms (each publish awaits its ack)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue_name, durable=durable)
        mode = aio_pika.DeliveryMode.PERSISTENT if durable else aio_pika.DeliveryMode.NOT_PERSISTENT
        for body in bodies:
            confirmation = await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=mode), routing_key=queue_name
            )
            assert confirmation is not None


async def _consume(
    url: str, queue_name: str, count: int, *, durable: bool, timeout: float = 20.0
) -> list[bytes]:
    """Take up to ``count`` messages from the queue (acking each), waiting at most ``timeout``
    seconds for them, and return their bodies."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=durable)
        received: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(received) < count and asyncio.get_running_loop().time() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            received.append(message.body)
            await message.ack()
        return received


def test_private_servers_listen_on_loopback_ports_of_their_own(
    private_rabbitmq: RabbitMQServer, private_redis_server: RedisServer
) -> None:
    rabbitmq, redis_server = private_rabbitmq, private_redis_server
    assert rabbitmq.amqp_url == f"amqp://guest:guest@127.0.0.1:{rabbitmq.port}/"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    ports = {rabbitmq.port, rabbitmq.dist_port, rabbitmq.epmd_port, redis_server.port}
    assert len(ports) == 4
    assert not ports & RESERVED_PORTS
    assert rabbitmq.nodename.startswith("agnexttest-")
    assert rabbitmq.nodename in rabbitmq.ctl("status").stdout
    assert redis_server.command("PING") == b"+PONG"
    assert rabbitmq.pid is not None
    assert rabbitmq.pid not in _other_beams(rabbitmq)


async def test_amqp_publish_and_consume_with_confirms(
    rabbitmq: AnyRabbitMQ, namespace: str, amqp_cleanup: AmqpCleanup
) -> None:
    queue_name = amqp_cleanup.queue(f"{namespace}.q")
    bodies = [f"message {i}".encode() for i in range(20)]
    await _publish(rabbitmq.amqp_url, queue_name, bodies, durable=False)
    assert await _consume(rabbitmq.amqp_url, queue_name, len(bodies), durable=False) == bodies


async def test_redis_set_and_get(redis_client: redis.asyncio.Redis, namespace: str) -> None:
    await redis_client.set(f"{namespace}:k", b"v")
    assert await redis_client.get(f"{namespace}:k") == b"v"
    assert await redis_client.config_get("appendonly") == {"appendonly": "yes"}
    assert await redis_client.config_get("appendfsync") == {"appendfsync": "everysec"}


async def test_redis_client_fixture_deletes_the_namespace_keys(redis_server: AnyRedis) -> None:
    # What redis_client's teardown does, checked from outside: no key of an earlier test is left.
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        assert [key async for key in client.scan_iter(match="t??????????:k")] == []
    finally:
        await client.aclose()


# --- Redis: stop / start / kill --------------------------------------------------------------


async def test_redis_stop_then_start_keeps_url_and_data(
    private_redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    url, port = private_redis_server.url, private_redis_server.port
    await redis_client.set(f"{namespace}:k", b"kept")
    await redis_client.rpush(f"{namespace}:list", b"a", b"b")

    await private_redis_server.astop()
    assert not private_redis_server.is_running
    with pytest.raises(redis.ConnectionError):
        await redis_client.ping()
    await private_redis_server.astart()

    assert (private_redis_server.url, private_redis_server.port) == (url, port)
    assert await redis_client.get(f"{namespace}:k") == b"kept"  # the client reconnects
    assert await redis_client.lrange(f"{namespace}:list", 0, -1) == [b"a", b"b"]


async def test_redis_kill_then_start(
    private_redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    await redis_client.set(f"{namespace}:k", b"acked")
    pid = private_redis_server.pid
    assert pid is not None

    await private_redis_server.akill()
    assert not private_redis_server.is_running
    assert private_redis_server.pid is None
    assert _gone(pid)

    await private_redis_server.astart()
    assert private_redis_server.pid != pid
    # The pooled connection died with the server, unnoticed (nothing was sent on it meanwhile).
    await redis_client.connection_pool.disconnect()
    # Acknowledged writes are in the append-only file (written before the reply; only fsync waits).
    assert await redis_client.get(f"{namespace}:k") == b"acked"


def _gone(pid: int) -> bool:
    """Whether the process has exited (a zombie that its parent has yet to reap counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


# --- RabbitMQ: stop / start / kill -----------------------------------------------------------


async def test_rabbitmq_stop_then_start_keeps_url_and_durable_messages(
    private_rabbitmq: RabbitMQServer, namespace: str, amqp_cleanup: AmqpCleanup
) -> None:
    url, nodename = private_rabbitmq.amqp_url, private_rabbitmq.nodename
    durable_queue = amqp_cleanup.queue(f"{namespace}.durable")
    transient_queue = amqp_cleanup.queue(f"{namespace}.transient")
    bodies = [f"persistent {i}".encode() for i in range(5)]
    await _publish(url, durable_queue, bodies, durable=True)
    await _publish(url, transient_queue, [b"gone"], durable=False)

    await private_rabbitmq.astop()
    assert not private_rabbitmq.is_running
    with pytest.raises(ConnectionError):
        await aio_pika.connect(url)
    await private_rabbitmq.astart()

    assert (private_rabbitmq.amqp_url, private_rabbitmq.nodename) == (url, nodename)
    assert await _consume(url, durable_queue, len(bodies), durable=True) == bodies
    # The durable queue is still there (now empty); the non-durable one did not survive.
    listed = (await private_rabbitmq.actl("list_queues", "name", "--quiet")).stdout.split()
    assert durable_queue in listed
    assert transient_queue not in listed


async def test_rabbitmq_kill_then_start_keeps_confirmed_persistent_messages(
    private_rabbitmq: RabbitMQServer, namespace: str, amqp_cleanup: AmqpCleanup
) -> None:
    url = private_rabbitmq.amqp_url
    queue_name = amqp_cleanup.queue(f"{namespace}.durable")
    bodies = [f"confirmed {i}".encode() for i in range(5)]
    await _publish(url, queue_name, bodies, durable=True)

    beam = private_rabbitmq.pid
    others = _other_beams(private_rabbitmq)
    assert beam is not None
    assert str(private_rabbitmq.base_dir).encode() in _cmdline(beam)  # our node's VM

    connection = await aio_pika.connect(url)
    async with connection:
        await private_rabbitmq.akill()
        assert not private_rabbitmq.is_running
        assert _gone(beam)
        assert others <= _beam_pids(), "another beam.smp was killed"
        await asyncio.sleep(0.1)
        assert connection.is_closed or not connection.connected.is_set()

    await private_rabbitmq.astart()
    assert private_rabbitmq.amqp_url == url
    assert private_rabbitmq.pid != beam
    assert await _consume(url, queue_name, len(bodies), durable=True) == bodies


async def test_a_test_may_leave_servers_down(
    private_rabbitmq: RabbitMQServer, private_redis_server: RedisServer
) -> None:
    # The autouse fixture starts them again after the test; the next tests depend on it.
    await private_rabbitmq.astop()
    await private_redis_server.akill()


def test_servers_left_down_were_started_again(
    private_rabbitmq: RabbitMQServer, private_redis_server: RedisServer
) -> None:
    assert private_rabbitmq.is_running
    assert private_redis_server.is_running
    assert private_redis_server.command("PING") == b"+PONG"


# --- set-up and teardown ---------------------------------------------------------------------


def test_rabbitmq_config_from_constructor_arguments() -> None:
    server = RabbitMQServer(
        consumer_timeout_ms=5000, max_message_size=1024, extra_config={"heartbeat": 5}
    )
    try:
        config = server.config_text()
    finally:
        server.close()
    assert f"listeners.tcp.default = 127.0.0.1:{server.port}\n" in config
    assert "consumer_timeout = 5000\n" in config
    assert "max_message_size = 1024\n" in config
    assert "heartbeat = 5\n" in config
    assert "disk_free_limit.absolute = 50MB\n" in config
    assert "vm_memory_high_watermark.relative = 0.4\n" in config
    assert not server.base_dir.exists()


def test_close_leaves_no_process_and_no_files() -> None:
    server = RedisServer()
    server.start()
    pid = server.pid
    assert pid is not None
    server.close()
    assert _gone(pid)
    assert not server.base_dir.exists()
    server.close()  # idempotent


_ORPHAN_SERVERS = """
import os, signal, sys
from tests.servers import RabbitMQServer, RedisServer
redis, rabbitmq = RedisServer().start(), RabbitMQServer().start()
print(redis.base_dir, redis.pid, rabbitmq.base_dir, rabbitmq.pid, rabbitmq.epmd_pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_servers_of_a_killed_test_run_are_swept_by_the_next(
    private_rabbitmq: RabbitMQServer, private_redis_server: RedisServer
) -> None:
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", _ORPHAN_SERVERS], cwd=root, capture_output=True, text=True
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    redis_dir, redis_pid, rabbitmq_dir, beam_pid, epmd_pid = run.stdout.split()
    pids = [int(redis_pid), int(beam_pid), int(epmd_pid)]
    assert not any(_gone(pid) for pid in pids)  # a SIGKILLed owner stops nothing

    removed = sweep_stale_servers()

    assert sorted(removed) == sorted([Path(redis_dir), Path(rabbitmq_dir)])
    assert all(_gone(pid) for pid in pids)
    assert not Path(redis_dir).exists()
    assert not Path(rabbitmq_dir).exists()
    assert private_rabbitmq.is_running  # the servers of this run are not touched
    assert private_redis_server.is_running
    assert private_rabbitmq.base_dir.exists()


@pytest.mark.slow
def test_rabbitmq_close_stops_node_and_epmd(private_rabbitmq: RabbitMQServer) -> None:
    # A second node, next to the session's one, to see what close() leaves behind.
    server = RabbitMQServer(max_message_size=4096)
    try:
        server.start()
        beam, epmd = server.pid, server.epmd_pid
        assert beam is not None
        assert epmd is not None
        assert beam != private_rabbitmq.pid
        assert server.port != private_rabbitmq.port
        env = server.ctl("eval", "application:get_env(rabbit, max_message_size).").stdout
        assert "4096" in env
    finally:
        server.close()
    for pid in (beam, epmd):
        assert _gone(pid)
    assert not server.base_dir.exists()
    assert private_rabbitmq.is_running


def test_pid_is_the_beam_of_our_node(private_rabbitmq: RabbitMQServer) -> None:
    # kill() sends SIGKILL to this pid: the beam.smp in the node's pid file, running our config.
    pid = private_rabbitmq.pid
    assert pid is not None
    assert private_rabbitmq.pid_file.read_text().strip() == str(pid)
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().strip() == "beam.smp"
    with open(f"/proc/{pid}/environ", "rb") as f:
        assert f"RABBITMQ_NODENAME={private_rabbitmq.nodename}".encode() in f.read().split(b"\0")


# --- servers given by URL ----------------------------------------------------------------------


async def test_external_servers_refuse_fault_injection() -> None:
    amqp = ExternalRabbitMQ("amqp://guest:guest@example.invalid:5672/")
    store = ExternalRedis("redis://example.invalid:6379/0")
    assert amqp.amqp_url.endswith(":5672/")
    assert not amqp.is_private
    assert store.redis_url == store.url
    for call in (amqp.stop, amqp.kill, amqp.restart, store.stop, store.kill, store.restart):
        with pytest.raises(PrivateServerRequired, match="private servers"):
            call()
    with pytest.raises(PrivateServerRequired, match="AGNEXT_TEST_AMQP_URL"):
        await amqp.akill()
    with pytest.raises(PrivateServerRequired, match="AGNEXT_TEST_REDIS_URL"):
        store.start()
    assert amqp.ensure_running() is amqp

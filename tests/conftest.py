"""Fixtures shared by every test directory: RabbitMQ and Redis servers, and per-test namespaces.

Session-scoped servers (started on first use, stopped and removed at the end of the session):

``rabbitmq``
    A ``RabbitMQServer`` (``tests/servers.py``): a private node on 127.0.0.1. Its ``amqp_url``,
    ``port``, ``nodename``, ``data_dir``, ``log_file``, ``pid`` (the ``beam.smp``) and
    ``is_running``; ``start()``, ``stop()``, ``kill()`` (SIGKILL), ``restart()``,
    ``ensure_running()`` and ``ctl(*args)`` (``rabbitmqctl`` against the node), each with an async
    twin (``astart()``, ``astop()``, ``akill()``, ``arestart()``, ``aensure_running()``,
    ``actl()``) for async tests. With ``AGNEXT_TEST_AMQP_URL`` set, an ``ExternalRabbitMQ`` for that
    URL instead, whose start/stop/kill/restart/ctl raise ``PrivateServerRequired``.
``redis_server``
    A ``RedisServer``: a private ``redis-server`` (append-only file, ``appendfsync everysec``),
    ``url``/``redis_url``, the same lifecycle methods and ``command(*args)``. With
    ``AGNEXT_TEST_REDIS_URL`` set, an ``ExternalRedis``.

A test that stops or kills a private server need not start it again: after each test, servers the
test used are started again if they are down.

Function-scoped:

``namespace``
    A unique prefix (``"t"`` + 10 hex digits) for the test's queue, exchange and key names.
``redis_client``
    A ``redis.asyncio.Redis`` on ``redis_server``; after the test, keys starting with ``namespace``
    are deleted and the client is closed.
``private_rabbitmq`` / ``private_redis_server``
    The same servers, for tests that stop, kill or inspect them: with a server given by URL these
    fixtures raise ``PrivateServerRequired`` (the test errors; it is not skipped).
``amqp_cleanup``
    An ``AmqpCleanup``: ``queue(name)`` / ``exchange(name)`` register names (and return them) to be
    deleted from ``rabbitmq`` after the test.

Private servers that a test run killed with SIGKILL could not stop are stopped when the next run
starts, and their directories removed.

If the binaries of a server that selected tests need are missing (and no URL is given), the run
stops with a usage error naming the Debian package to install; nothing is skipped.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
import redis.asyncio

from tests.servers import (
    RABBITMQ_BINARIES,
    REDIS_BINARIES,
    AmqpCleanup,
    AnyRabbitMQ,
    AnyRedis,
    ExternalRabbitMQ,
    ExternalRedis,
    PrivateServerRequired,
    RabbitMQServer,
    RedisServer,
    missing_binaries,
    sweep_stale_servers,
)

AMQP_URL_ENV = "AGNEXT_TEST_AMQP_URL"
REDIS_URL_ENV = "AGNEXT_TEST_REDIS_URL"


def pytest_sessionstart(session: pytest.Session) -> None:
    for directory in sweep_stale_servers():
        print(f"stopped the private servers a killed test run left in {directory}")


@pytest.hookimpl(trylast=True)  # after -m/-k deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted: set[str] = set()
    for item in items:
        if item.get_closest_marker("integration") is not None:
            wanted.update(getattr(item, "fixturenames", ()))
    missing: list[str] = []
    if "rabbitmq" in wanted and not os.environ.get(AMQP_URL_ENV):
        missing += missing_binaries(RABBITMQ_BINARIES)
    if "redis_server" in wanted and not os.environ.get(REDIS_URL_ENV):
        missing += missing_binaries(REDIS_BINARIES)
    if missing:
        raise pytest.UsageError(
            "the integration tests start private servers from the system's binaries, and some are "
            "missing:\n  " + "\n  ".join(dict.fromkeys(missing)) + "\n(install them, e.g. "
            "`apt-get install rabbitmq-server redis-server`, or deselect them with "
            f"-m 'not integration', or point {AMQP_URL_ENV} / {REDIS_URL_ENV} at servers)"
        )


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[AnyRabbitMQ]:
    """The RabbitMQ of the session: a private node, or ``AGNEXT_TEST_AMQP_URL``."""
    url = os.environ.get(AMQP_URL_ENV)
    if url:
        yield ExternalRabbitMQ(url)
        return
    server = RabbitMQServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[AnyRedis]:
    """The Redis of the session: a private server, or ``AGNEXT_TEST_REDIS_URL``."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        yield ExternalRedis(url)
        return
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test, so that a connection or task it leaked is reported (as an
    unraisable-exception error) at that test rather than at whichever test runs the collector."""
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _restart_stopped_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, start again the private servers it used if it left them down."""
    yield
    for name in ("rabbitmq", "redis_server"):
        if name in request.fixturenames:
            server: AnyRabbitMQ | AnyRedis = request.getfixturevalue(name)
            server.ensure_running()


@pytest.fixture
def namespace() -> str:
    """A unique prefix for the names a test creates."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
async def redis_client(
    redis_server: AnyRedis, namespace: str
) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of ``redis_server``; the test's ``namespace*`` keys are deleted after it."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        try:
            await redis_server.aensure_running()
            await client.connection_pool.disconnect()  # the server may have been restarted
            keys = [key async for key in client.scan_iter(match=f"{namespace}*", count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.fixture
async def amqp_cleanup(rabbitmq: AnyRabbitMQ, namespace: str) -> AsyncIterator[AmqpCleanup]:
    """Register queues/exchanges with it; they are deleted from ``rabbitmq`` after the test."""
    cleanup = AmqpCleanup(namespace)
    yield cleanup
    if not (cleanup.queues or cleanup.exchanges):
        return
    await rabbitmq.aensure_running()
    connection = await aio_pika.connect(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in cleanup.queues:
            await channel.queue_delete(queue)
        for exchange in cleanup.exchanges:
            await channel.exchange_delete(exchange)


@pytest.fixture
def private_rabbitmq(rabbitmq: AnyRabbitMQ) -> RabbitMQServer:
    """``rabbitmq`` for tests that stop, kill or inspect it: an error if it is given by URL."""
    if not isinstance(rabbitmq, RabbitMQServer):
        raise PrivateServerRequired(
            f"this test stops/kills/inspects RabbitMQ, which needs the private server the harness "
            f"starts; unset {AMQP_URL_ENV} to run it"
        )
    return rabbitmq


@pytest.fixture
def private_redis_server(redis_server: AnyRedis) -> RedisServer:
    """``redis_server`` for tests that stop, kill or inspect it: an error if it is given by URL."""
    if not isinstance(redis_server, RedisServer):
        raise PrivateServerRequired(
            f"this test stops/kills/inspects Redis, which needs the private server the harness "
            f"starts; unset {REDIS_URL_ENV} to run it"
        )
    return redis_server

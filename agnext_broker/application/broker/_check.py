"""``agnext-broker worker --check``: can a worker with these settings do its work here?

Connects to Redis and RabbitMQ as a worker would, declares the namespace's exchanges and
dead-letter queue (configure permission), and sends a probe message through a queue of its own
(``<ns>.check.<worker id>``: configure, write and read permissions), reads the registry, and says
what it found. Nothing is left behind: the probe queue is exclusive and deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from ...base import AccessRefusedError, AgnextError
from ._amqp import Topology, amqp_errors
from ._amqp._connection import connect_amqp
from ._names import Names
from ._redis import Registry, connect_redis, redis_errors
from ._settings import BrokerSettings, redact
from ._tls import amqp_tls, redis_tls

PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Finding:
    what: str
    ok: bool
    detail: str


async def check(settings: BrokerSettings) -> list[Finding]:
    """What a worker with ``settings`` finds; every finding ``ok`` means it can run."""
    names = Names(settings.namespace)
    findings = [await _check_redis(settings, names)]
    findings.append(await _check_rabbitmq(settings, names))
    return findings


async def _check_redis(settings: BrokerSettings, names: Names) -> Finding:
    server = redact(settings.redis)
    try:
        redis = await connect_redis(settings.redis, settings.connect_timeout, **redis_tls(settings))
    except AgnextError as e:
        return Finding("Redis", False, str(e))
    try:
        info: dict[str, object] = {}  # a user limited to the runtime's commands has no INFO
        with contextlib.suppress(AccessRefusedError), redis_errors(server):
            info = await redis.info("server")
        view = await Registry(redis, names, server).live_workers()
        types = await Registry(redis, names, server).agent_types()
        workers = len(view.workers)
        return Finding(
            "Redis",
            True,
            f"{server}: Redis {info.get('redis_version', '?')}; namespace {names.namespace!r}: "
            f"{workers} live worker(s), {len(types)} agent type(s) registered",
        )
    except AgnextError as e:
        return Finding("Redis", False, str(e))
    finally:
        await redis.aclose()


async def _check_rabbitmq(settings: BrokerSettings, names: Names) -> Finding:
    server = redact(settings.amqp)
    try:
        connection = await connect_amqp(
            settings.amqp, server, f"check-{settings.worker_id}", settings.connect_timeout,
            **amqp_tls(settings),
        )  # fmt: skip
    except AgnextError as e:
        return Finding("RabbitMQ", False, str(e))
    try:
        version = _server_version(connection)
        async with asyncio.timeout(PROBE_TIMEOUT):
            await _probe(connection, settings, names, server)
        return Finding(
            "RabbitMQ",
            True,
            f"{server}: RabbitMQ {version}; exchanges {names.events_exchange}, "
            f"{names.direct_exchange}, {names.reply_exchange}, {names.dead_letter_exchange} and "
            f"queue {names.dead_letter_queue} declared; a probe message went through",
        )
    except TimeoutError:
        return Finding("RabbitMQ", False, f"{server}: the probe got no answer in {PROBE_TIMEOUT} s")
    except AgnextError as e:
        return Finding("RabbitMQ", False, str(e))
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


def _server_version(connection: AbstractRobustConnection) -> str:
    properties = connection.transport.connection.server_properties if connection.transport else {}
    version = properties.get("version", "?") if properties else "?"
    return version.decode() if isinstance(version, bytes) else str(version)


async def _probe(
    connection: AbstractRobustConnection, settings: BrokerSettings, names: Names, server: str
) -> None:
    with amqp_errors(server):
        channel = await connection.channel(publisher_confirms=True)
    topology = Topology(channel, names, settings, server)
    await topology.declare_base()
    probe = f"{names.namespace}.check.{settings.worker_id}"
    with amqp_errors(server):
        queue = await channel.declare_queue(probe, exclusive=True, auto_delete=True)
        await queue.bind(topology.events, routing_key=probe)
        await topology.events.publish(aio_pika.Message(b"probe"), routing_key=probe)
        async with queue.iterator(no_ack=True) as messages:
            async for message in messages:
                if message.body == b"probe":
                    break
        await queue.delete(if_unused=False, if_empty=False)

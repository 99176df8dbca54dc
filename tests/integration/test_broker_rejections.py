"""Bad input answers its caller at once: a request the worker refuses is dead-lettered with the
reason AND answered with an error response (``MessageRejectedError`` in a runtime), instead of
leaving the caller to wait for its timeout."""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass
from typing import Any

import pika  # type: ignore[import-untyped]
import pytest
import redis.asyncio

from agnext_broker import (
    AgentId,
    MessageRejectedError,
    try_get_known_serializers_for_type,
)
from tests.integration.apps import COUNTER_TYPE, Increment, ReadCount, register_counter
from tests.integration.test_broker_wire import Pika, _get, _rpc, ce_headers, doc_routing_key
from tests.integration.workers import (
    PARTITIONS,
    RuntimePool,
    WorkerPool,
    runtimes_fixture,  # noqa: F401
    workers_fixture,  # noqa: F401
)
from tests.servers import AnyRabbitMQ

pytestmark = pytest.mark.integration

REJECTED_ERROR_TYPE = "agnext_broker.base._exceptions:MessageRejectedError"


@dataclass
class Mystery:
    """A message type only the test's client knows. It is defined here, not in an apps module,
    because the worker must not know it: a worker in this process would find any dataclass it
    has seen in the process-wide serialization catalog, so the worker is a subprocess that never
    imports this module."""

    clue: str = "none"


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def partition_of(key: str) -> int:
    """The partition of an agent key, from docs/wire-format.md's hash."""
    return zlib.crc32(key.encode("utf-8")) & (PARTITIONS - 1)


def key_in_another_partition(key: str) -> str:
    home = partition_of(key)
    return next(f"other-{i}" for i in range(1000) if partition_of(f"other-{i}") != home)


def _rpc_with_routing_key(
    url: str,
    namespace: str,
    routing_key: str,
    recipient: str,
    headers: dict[str, Any],
    body: bytes,
) -> tuple[pika.spec.BasicProperties, bytes]:
    """An RPC as docs/wire-format.md describes it, but published with ``routing_key``."""
    agent_type, _, key = recipient.partition("/")
    with Pika(url) as client:
        return client.rpc(namespace, agent_type, key, headers, body, routing_key=routing_key)


async def dead_letter(url: str, namespace: str) -> tuple[dict[str, Any], bytes]:
    """The next message of ``<ns>.dead-letter`` (headers as text), waiting up to 20 s."""
    properties, body = await asyncio.to_thread(_get, url, f"{namespace}.dead-letter")
    return {k: text(v) for k, v in (properties.headers or {}).items()}, body


# -- a: a type the worker does not know ---------------------------------------------------------


async def test_request_the_worker_cannot_decode_is_answered_with_the_reason(
    rabbitmq: AnyRabbitMQ,
    namespace: str,
    workers: WorkerPool,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
) -> None:
    worker = workers.start_worker("register_counter")
    await workers.wait_registered(redis_client, worker)
    client = await runtimes.start(rpc_timeout=30.0)
    client.add_message_serializer(try_get_known_serializers_for_type(Mystery))
    agent = AgentId(COUNTER_TYPE, "k")
    # The worker consumes k's partition (so what follows measures the answer, not a claim).
    assert await client.send_message(Increment(1), agent) == 1, workers.logs()

    started = time.monotonic()
    with pytest.raises(MessageRejectedError) as caught:
        await client.send_message(Mystery("who"), agent)
    elapsed = time.monotonic() - started
    assert isinstance(caught.value, ValueError)
    assert "unknown_type" in str(caught.value), caught.value
    assert "Mystery" in str(caught.value), caught.value
    # Not the 30 s rpc_timeout: the worker answered when it refused the message.
    assert elapsed < 5.0, f"the rejection took {elapsed:.1f} s"

    headers, body = await dead_letter(rabbitmq.amqp_url, namespace)
    assert headers.get("x-agnext-reason") == "unknown_type", headers
    assert headers.get("ce-type") == "Mystery", headers
    assert b"who" in body

    # The worker keeps answering, and the refused message changed nothing.
    assert await client.send_message(Increment(1), agent) == 2, workers.logs()
    assert await client.send_message(ReadCount(), agent) == 2


# -- b: a misrouted request ---------------------------------------------------------------------


async def test_misrouted_request_is_answered_and_dead_lettered(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool
) -> None:
    runtime = await runtimes.start(register_counter)
    agent = AgentId(COUNTER_TYPE, "alpha")
    assert await runtime.send_message(Increment(1), agent) == 1
    other = key_in_another_partition("alpha")
    assert partition_of(other) != partition_of("alpha")

    properties, body = await asyncio.to_thread(
        _rpc_with_routing_key,
        rabbitmq.amqp_url,
        namespace,
        doc_routing_key(other, COUNTER_TYPE),  # the hash words of another partition's key
        f"{COUNTER_TYPE}/alpha",
        ce_headers("Increment"),
        b'{"amount": 5}',
    )
    headers = properties.headers or {}
    assert headers.get("ce-agkind") == "error", headers
    assert "MessageRejectedError" in text(headers.get("ce-agerrortype")), headers
    assert text(headers.get("ce-agerrortype")) == REJECTED_ERROR_TYPE
    assert "misrouted" in body.decode(), body

    letter, letter_body = await dead_letter(rabbitmq.amqp_url, namespace)
    assert letter.get("x-agnext-reason") == "misrouted", letter
    assert letter.get("x-agnext-queue") == f"{namespace}.agent.{COUNTER_TYPE}.{partition_of(other)}"
    assert letter.get("ce-agrecipient") == f"{COUNTER_TYPE}/alpha"
    assert letter_body == b'{"amount": 5}'

    assert await runtime.send_message(ReadCount(), agent) == 1  # not applied
    assert await runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, other)) == 0


# -- c: not a valid CloudEvent, but with a reply_to --------------------------------------------


async def test_invalid_cloudevent_with_reply_to_is_answered(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool
) -> None:
    runtime = await runtimes.start(register_counter)
    agent = AgentId(COUNTER_TYPE, "alpha")
    assert await runtime.send_message(Increment(1), agent) == 1
    headers = ce_headers("Increment")
    del headers["ce-id"]  # required; the AMQP message_id is left out too

    properties, body = await asyncio.to_thread(
        _rpc, rabbitmq.amqp_url, namespace, COUNTER_TYPE, "alpha", headers, b'{"amount": 5}'
    )
    response = properties.headers or {}
    assert response.get("ce-agkind") == "error", response
    assert text(response.get("ce-agerrortype")) == REJECTED_ERROR_TYPE, response
    assert "invalid_cloudevent" in body.decode(), body

    letter, _ = await dead_letter(rabbitmq.amqp_url, namespace)
    assert letter.get("x-agnext-reason") == "invalid_cloudevent", letter
    assert await runtime.send_message(ReadCount(), agent) == 1  # not applied

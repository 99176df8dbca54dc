"""Bad input ends in ``<ns>.dead-letter`` with the reason, and the worker keeps going; an
oversized message is refused at send."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from agnext_broker import AgentId, TopicId
from agnext_broker.application.broker import MessageTooLargeError
from tests.integration.apps import (
    COUNTER_TYPE,
    FRAGILE_TOPIC,
    FRAGILE_TYPE,
    INCREMENTS_TOPIC,
    Blob,
    Fragile,
    Increment,
    ReadCount,
    Status,
    register_counter,
    register_fragile,
)
from tests.integration.workers import (
    PARTITIONS,
    RuntimePool,
    bounded,
    runtimes_fixture,  # noqa: F401
)
from tests.servers import AnyRabbitMQ

pytestmark = pytest.mark.integration

WORKER_MAX_BYTES = 4096
CLIENT_MAX_BYTES = 1024
HANDLER_ATTEMPTS = 2
KEY = "target"


def doc_routing_key(key: str, name: str) -> str:
    crc = zlib.crc32(key.encode("utf-8"))
    return ".".join([*(str((crc >> i) & 1) for i in range(8)), name.replace(":", ":.")])


def partition_queue(namespace: str, agent_type: str, key: str) -> str:
    return f"{namespace}.agent.{agent_type}.{zlib.crc32(key.encode()) & (PARTITIONS - 1)}"


def send_headers(ce_type: str, case: str, **drop: bool) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "ce-specversion": "1.0",
        "ce-id": uuid.uuid4().hex,
        "ce-source": "urn:agnext-tests:aio-pika",
        "ce-type": ce_type,
        "ce-agkind": "send",
        "ce-agrecipient": f"{COUNTER_TYPE}/{KEY}",
        "x-test-case": case,
    }
    for name, dropped in drop.items():
        if dropped:
            del headers[f"ce-{name}"]
    return headers


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture
async def amqp(rabbitmq: AnyRabbitMQ) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(rabbitmq.amqp_url)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await bounded(connection.close(), "closing the test's AMQP connection")


async def dead_letters(
    channel: AbstractChannel, namespace: str, expected: int, timeout: float = 30.0
) -> list[AbstractIncomingMessage]:
    """Up to ``expected`` messages from the dead-letter queue, waiting at most ``timeout``."""
    queue = await channel.get_queue(f"{namespace}.dead-letter", ensure=False)
    found: list[AbstractIncomingMessage] = []
    deadline = time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        message = await queue.get(no_ack=True, fail=False, timeout=5)
        if message is None:
            await asyncio.sleep(0.05)
        else:
            found.append(message)
    return found


STRUCTURED = "application/cloudevents+json"


def structured(case: str, **drop: bool) -> tuple[dict[str, Any], str, bytes]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "urn:agnext-tests:aio-pika",
        "type": "Increment",
        "datacontenttype": "application/json",
        "agkind": "send",
        "agrecipient": f"{COUNTER_TYPE}/{KEY}",
        "data": {"amount": 1},
    }
    for name, dropped in drop.items():
        if dropped:
            del event[name]
    return {"x-test-case": case}, STRUCTURED, json.dumps(event).encode()


GOOD_BODY = b'{"amount": 1}'
TOO_LARGE_BODY = b'{"amount": 1, "padding": "' + b"x" * (2 * WORKER_MAX_BYTES) + b'"}'

# case -> (expected x-agnext-reason, headers, content type, body)
CASES: dict[str, tuple[str, dict[str, Any], str, bytes]] = {
    "unknown type": (
        "unknown_type",
        send_headers("NoSuchMessage", "unknown type"),
        "application/json",
        GOOD_BODY,
    ),
    "not json": (
        "undecodable",
        send_headers("Increment", "not json"),
        "application/json",
        b"{not json",
    ),
    "wrong field type": (
        "undecodable",
        send_headers("Increment", "wrong field type"),
        "application/json",
        b'{"amount": "many"}',
    ),
    "no ce-id": (
        "invalid_cloudevent",
        send_headers("Increment", "no ce-id", id=True),
        "application/json",
        GOOD_BODY,
    ),
    "no ce-source": (
        "invalid_cloudevent",
        send_headers("Increment", "no ce-source", source=True),
        "application/json",
        GOOD_BODY,
    ),
    "no ce-specversion": (
        "invalid_cloudevent",
        send_headers("Increment", "no ce-specversion", specversion=True),
        "application/json",
        GOOD_BODY,
    ),
    "structured without id": (
        "invalid_cloudevent",
        *structured("structured without id", id=True),
    ),
    "structured not json": (
        "invalid_cloudevent",
        {"x-test-case": "structured not json"},
        STRUCTURED,
        b'{"specversion": "1.0", "id": ',
    ),
    "kind response": (
        "invalid_cloudevent",
        {**send_headers("Increment", "kind response"), "ce-agkind": "response"},
        "application/json",
        GOOD_BODY,
    ),
    "send without recipient": (
        "invalid_cloudevent",
        send_headers("Increment", "send without recipient", agrecipient=True),
        "application/json",
        GOOD_BODY,
    ),
    "too large": (
        "too_large",
        send_headers("Increment", "too large"),
        "application/json",
        TOO_LARGE_BODY,
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_dead_lettered_and_the_worker_keeps_going(
    case: str, namespace: str, runtimes: RuntimePool, amqp: AbstractChannel
) -> None:
    reason, headers, content_type, body = CASES[case]
    worker = await runtimes.start(register_counter, max_message_bytes=WORKER_MAX_BYTES)
    agent = AgentId(COUNTER_TYPE, KEY)
    assert await worker.send_message(Increment(1), agent) == 1

    direct = await amqp.get_exchange(f"{namespace}.direct", ensure=False)
    await direct.publish(
        aio_pika.Message(
            body,
            headers=headers,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=headers.get("ce-id"),
        ),
        doc_routing_key(KEY, COUNTER_TYPE),
    )
    # A good message after the bad one, in the same partition queue: the worker still handles.
    count = await worker.send_message(Increment(1), agent)

    letters = await dead_letters(amqp, namespace, 1, timeout=5.0)
    assert letters, f"{case}: nothing was dead-lettered (the counter is now at {count})"
    got = letters[0].headers or {}
    assert text(got.get("x-agnext-reason")) == reason, got
    assert text(got.get("x-agnext-queue")) == partition_queue(namespace, COUNTER_TYPE, KEY)
    assert text(got.get("x-agnext-detail"))
    assert letters[0].body == body
    for name, value in headers.items():  # the original headers are kept
        assert text(got.get(name)) == value, name
    assert count == 2, f"{case}: the bad message was applied"
    assert await worker.send_message(ReadCount(), agent) == 2


@pytest.mark.integration
async def test_failing_event_handler_is_dead_lettered_after_its_attempts(
    namespace: str, runtimes: RuntimePool, amqp: AbstractChannel
) -> None:
    async def register(runtime: Any) -> None:
        await register_counter(runtime)
        await register_fragile(runtime)

    worker = await runtimes.start(register, handler_attempts=HANDLER_ATTEMPTS)
    await worker.publish_message(Increment(1), TopicId(FRAGILE_TOPIC, namespace))

    letters = await dead_letters(amqp, namespace, 1, timeout=30.0)
    assert len(letters) == 1
    failed = letters[0].headers or {}
    assert text(failed.get("x-agnext-reason")) == "handler_error"
    assert "RuntimeError" in text(failed.get("x-agnext-detail"))
    assert "refuses increment" in text(failed.get("x-agnext-detail"))
    assert text(failed.get("x-agnext-queue")) == partition_queue(namespace, FRAGILE_TYPE, namespace)
    assert text(failed.get("ce-type")) == "Increment"
    assert json.loads(letters[0].body) == {"amount": 1, "announce": False}
    assert Fragile.attempts[namespace] == HANDLER_ATTEMPTS

    # The worker keeps going.
    await worker.publish_message(Increment(5), TopicId(INCREMENTS_TOPIC, KEY))
    assert await worker.send_message(ReadCount(), AgentId(COUNTER_TYPE, KEY)) == 5


@pytest.mark.integration
async def test_oversized_message_is_refused_at_send(
    namespace: str, runtimes: RuntimePool, amqp: AbstractChannel
) -> None:
    # The worker would accept 4 KiB; the client's limit is 1 KiB.
    worker = await runtimes.start(register_counter, max_message_bytes=WORKER_MAX_BYTES)
    client = await runtimes.start(max_message_bytes=CLIENT_MAX_BYTES)
    agent = AgentId(COUNTER_TYPE, KEY)
    big = Blob("x" * (2 * CLIENT_MAX_BYTES))

    with pytest.raises(MessageTooLargeError, match=str(CLIENT_MAX_BYTES)):
        await client.send_message(big, agent)
    with pytest.raises(MessageTooLargeError):
        await client.publish_message(big, TopicId(INCREMENTS_TOPIC, KEY))
    assert issubclass(MessageTooLargeError, ValueError)

    # Nothing was sent: the agent's first blob is the next one.
    status = await client.send_message(Blob("small"), agent)
    assert isinstance(status, Status)
    assert status.blobs == 1
    assert await worker.send_message(ReadCount(), agent) == 0
    dead = await amqp.get_queue(f"{namespace}.dead-letter", ensure=False)
    assert await dead.get(no_ack=True, fail=False) is None

"""The wire format with another AMQP client: pika talks to the agents using only what
docs/wire-format.md says (routing keys are computed here from the documented formula)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import zlib
from collections.abc import Mapping
from typing import Any

import pika  # type: ignore[import-untyped]
import pika.exceptions  # type: ignore[import-untyped]
import pytest
from pika.adapters.blocking_connection import BlockingChannel  # type: ignore[import-untyped]

from agnext_broker import AgentId, TypePrefixSubscription, TypeSubscription
from tests.integration.apps import (
    COUNTED_TOPIC,
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    AppError,
    Explode,
    GetStatus,
    Increment,
    ReadCount,
    Status,
    register_counter,
)
from tests.integration.workers import (
    RuntimePool,
    runtimes_fixture,  # noqa: F401
)
from tests.servers import AmqpCleanup, AnyRabbitMQ

pytestmark = pytest.mark.integration

SOURCE = "urn:agnext-tests:pika"


def doc_routing_key(key: str, name: str) -> str:
    """``routing_key(key, name)`` exactly as docs/wire-format.md defines it."""
    crc = zlib.crc32(key.encode("utf-8"))
    bits = [str((crc >> i) & 1) for i in range(8)]
    return ".".join([*bits, name.replace(":", ":.")])


def test_documented_example_routing_key() -> None:
    # The example of the document itself, so the formula above is the documented one.
    assert doc_routing_key("alpha", "tallier") == "0.1.0.1.0.1.1.0.tallier"


def ce_headers(ce_type: str, **extensions: str) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "ce-specversion": "1.0",
        "ce-id": uuid.uuid4().hex,
        "ce-source": SOURCE,
        "ce-type": ce_type,
    }
    headers.update({f"ce-{name}": value for name, value in extensions.items()})
    return headers


# -- blocking pika, run in a thread --------------------------------------------------------------


class Pika:
    """One pika BlockingConnection with publisher confirms; use it from one thread."""

    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel: BlockingChannel = self.connection.channel()
        self.channel.confirm_delivery()

    def __enter__(self) -> Pika:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.connection.is_open:
            self.connection.close()

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: Mapping[str, Any] | None,
        *,
        content_type: str = "application/json",
        reply_to: str | None = None,
        correlation_id: str | None = None,
        mandatory: bool = False,
    ) -> None:
        message_id = (headers or {}).get("ce-id")
        self.channel.basic_publish(
            exchange,
            routing_key,
            body,
            pika.BasicProperties(
                content_type=content_type,
                headers=dict(headers) if headers is not None else None,
                delivery_mode=2,
                message_id=message_id,
                reply_to=reply_to,
                correlation_id=correlation_id,
            ),
            mandatory=mandatory,
        )

    def get(
        self, queue: str, timeout: float = 20.0
    ) -> tuple[pika.spec.BasicProperties, bytes] | None:
        """The next message of ``queue`` (acknowledged), or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return properties, body
            self.connection.sleep(0.05)
        return None

    def rpc(
        self,
        namespace: str,
        agent_type: str,
        key: str,
        headers: dict[str, Any],
        body: bytes,
        timeout: float = 20.0,
        routing_key: str | None = None,
    ) -> tuple[pika.spec.BasicProperties, bytes]:
        """Call ``agent_type/key`` as docs/wire-format.md describes (published with
        ``routing_key`` if given, to check what a wrong one does); return the response."""
        reply_queue = self.channel.queue_declare("", exclusive=True).method.queue
        correlation = uuid.uuid4().hex
        headers = {
            **headers,
            "ce-agkind": "send",
            "ce-agrecipient": f"{agent_type}/{key}",
            "ce-agcorrelation": correlation,
        }
        self.publish(
            f"{namespace}.direct",
            routing_key or doc_routing_key(key, agent_type),
            body,
            headers,
            reply_to=reply_queue,
            correlation_id=correlation,
            mandatory=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.get(reply_queue, deadline - time.monotonic())
            if got is not None and got[0].correlation_id == correlation:
                return got
        raise AssertionError(f"no response to {headers} within {timeout} s")


def _publish(url: str, *args: Any, **kwargs: Any) -> None:
    with Pika(url) as client:
        client.publish(*args, **kwargs)


def _rpc(url: str, *args: Any, **kwargs: Any) -> tuple[pika.spec.BasicProperties, bytes]:
    with Pika(url) as client:
        return client.rpc(*args, **kwargs)


def _get(url: str, queue: str, timeout: float = 20.0) -> tuple[pika.spec.BasicProperties, bytes]:
    with Pika(url) as client:
        got = client.get(queue, timeout)
    assert got is not None, f"nothing arrived on {queue} within {timeout} s"
    return got


def _declare_bound_queue(url: str, queue: str, exchange: str, binding: str) -> None:
    with Pika(url) as client:
        client.channel.queue_declare(queue, durable=False, auto_delete=False)
        client.channel.queue_bind(queue, exchange, binding)


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_event_in_binary_mode_from_pika(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool
) -> None:
    runtime = await runtimes.start(register_counter)
    headers = ce_headers(
        "Increment", agkind="publish", agtopictype=INCREMENTS_TOPIC, agtopicsource="alpha"
    )
    await asyncio.to_thread(
        _publish,
        rabbitmq.amqp_url,
        f"{namespace}.events",
        doc_routing_key("alpha", INCREMENTS_TOPIC),
        b'{"amount": 3}',
        headers,
    )
    # The event is confirmed before the RPC is sent, and both go to alpha's partition queue:
    # the RPC is handled after it.
    assert await runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, "alpha")) == 3
    assert await runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, "beta")) == 0


@pytest.mark.integration
async def test_event_without_agkind_defaults_to_publish(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool
) -> None:
    # "ce-agkind ... default: publish when ce-agtopictype is present"
    runtime = await runtimes.start(register_counter)
    headers = ce_headers("Increment", agtopictype=INCREMENTS_TOPIC, agtopicsource="gamma")
    await asyncio.to_thread(
        _publish,
        rabbitmq.amqp_url,
        f"{namespace}.events",
        doc_routing_key("gamma", INCREMENTS_TOPIC),
        b'{"amount": 2}',
        headers,
    )
    assert await runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, "gamma")) == 2


@pytest.mark.integration
async def test_event_in_structured_mode_from_pika(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool
) -> None:
    runtime = await runtimes.start(register_counter)
    event = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": SOURCE,
        "type": "Increment",
        "datacontenttype": "application/json",
        "agkind": "publish",
        "agtopictype": INCREMENTS_TOPIC,
        "agtopicsource": "delta",
        "data": {"amount": 4},
    }
    await asyncio.to_thread(
        _publish,
        rabbitmq.amqp_url,
        f"{namespace}.events",
        doc_routing_key("delta", INCREMENTS_TOPIC),
        json.dumps(event).encode(),
        None,
        content_type="application/cloudevents+json",
    )
    assert await runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, "delta")) == 4


@pytest.mark.integration
async def test_topic_types_with_colons_follow_the_documented_rule(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool, amqp_cleanup: AmqpCleanup
) -> None:
    runtime = await runtimes.start(register_counter)
    await runtime.add_subscription(TypeSubscription("work:urgent", COUNTER_TYPE))
    await runtime.add_subscription(TypePrefixSubscription("jobs:", COUNTER_TYPE))
    queue = amqp_cleanup.queue(f"{namespace}.test.urgent")
    await asyncio.to_thread(
        _declare_bound_queue,
        rabbitmq.amqp_url,
        queue,
        f"{namespace}.events",
        "#." + "work:urgent".replace(":", ":."),
    )
    for topic_type, amount in (("work:urgent", 1), ("jobs:later", 10), ("jobs:x:y", 100)):
        headers = ce_headers(
            "Increment", agkind="publish", agtopictype=topic_type, agtopicsource="k"
        )
        await asyncio.to_thread(
            _publish,
            rabbitmq.amqp_url,
            f"{namespace}.events",
            doc_routing_key("k", topic_type),
            json.dumps({"amount": amount}).encode(),
            headers,
        )
    assert await runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, "k")) == 111
    properties, _body = await asyncio.to_thread(_get, rabbitmq.amqp_url, queue)
    assert (properties.headers or {}).get("ce-agtopictype") == "work:urgent"


@pytest.mark.integration
async def test_rpc_from_pika(rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool) -> None:
    runtime = await runtimes.start(register_counter)
    url = rabbitmq.amqp_url
    increment = ce_headers("Increment")

    properties, body = await asyncio.to_thread(
        _rpc, url, namespace, COUNTER_TYPE, "alpha", increment, b'{"amount": 5}'
    )
    headers = properties.headers or {}
    assert headers.get("ce-agkind") == "response", headers
    assert headers.get("ce-type") == "json"  # a plain JSON value
    assert headers.get("ce-specversion") == "1.0"
    assert headers.get("ce-agcorrelation") == properties.correlation_id
    assert properties.content_type == "application/json"
    assert json.loads(body) == 5

    # A retry with the same ce-id is answered with the stored response, not applied again.
    properties, body = await asyncio.to_thread(
        _rpc, url, namespace, COUNTER_TYPE, "alpha", increment, b'{"amount": 5}'
    )
    assert (properties.headers or {}).get("ce-agkind") == "response"
    assert json.loads(body) == 5

    # A response that is a message: ce-type is its wire name, the body its JSON.
    properties, body = await asyncio.to_thread(
        _rpc, url, namespace, COUNTER_TYPE, "alpha", ce_headers("GetStatus"), b"{}"
    )
    assert (properties.headers or {}).get("ce-type") == "Status"
    status = json.loads(body)
    assert status["key"] == "alpha"
    assert status["count"] == 5

    # The runtime sees the same agent.
    status_obj = await runtime.send_message(GetStatus(), AgentId(COUNTER_TYPE, "alpha"))
    assert isinstance(status_obj, Status)
    assert status_obj.count == 5


@pytest.mark.integration
async def test_rpc_error_from_pika(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool
) -> None:
    runtime = await runtimes.start(register_counter)
    url = rabbitmq.amqp_url

    properties, body = await asyncio.to_thread(
        _rpc, url, namespace, COUNTER_TYPE, "alpha", ce_headers("Explode"), b'{"message": "no way"}'
    )
    headers = properties.headers or {}
    assert headers.get("ce-agkind") == "error", headers
    assert headers.get("ce-agerrortype") == "tests.integration.apps:AppError"
    assert body.decode() == "no way"

    properties, body = await asyncio.to_thread(
        _rpc,
        url,
        namespace,
        COUNTER_TYPE,
        "alpha",
        ce_headers("Explode"),
        b'{"message": "bad value", "builtin": true}',
    )
    headers = properties.headers or {}
    assert headers.get("ce-agkind") == "error"
    assert headers.get("ce-agerrortype") == "ValueError"
    assert body.decode() == "bad value"

    # The runtime's own caller gets the same exception type back.
    with pytest.raises(AppError, match="no way either"):
        await runtime.send_message(Explode("no way either"), AgentId(COUNTER_TYPE, "alpha"))


@pytest.mark.integration
async def test_consume_what_agents_publish_with_pika(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool, amqp_cleanup: AmqpCleanup
) -> None:
    runtime = await runtimes.start(register_counter)
    queue = amqp_cleanup.queue(f"{namespace}.test.counted")
    await asyncio.to_thread(
        _declare_bound_queue,
        rabbitmq.amqp_url,
        queue,
        f"{namespace}.events",
        f"#.{COUNTED_TOPIC}",
    )
    assert await runtime.send_message(Increment(7, announce=True), AgentId(COUNTER_TYPE, "x")) == 7

    properties, body = await asyncio.to_thread(_get, rabbitmq.amqp_url, queue)
    headers = properties.headers or {}
    assert headers.get("ce-specversion") == "1.0"
    assert headers.get("ce-type") == "Counted"
    assert headers.get("ce-agkind") == "publish"
    assert headers.get("ce-agtopictype") == COUNTED_TOPIC
    assert headers.get("ce-agtopicsource") == "x"
    assert headers.get("ce-agsender") == f"{COUNTER_TYPE}/x"
    assert headers.get("ce-source") == f"{COUNTER_TYPE}/x"
    assert headers.get("ce-id")
    assert properties.message_id == headers.get("ce-id")
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert json.loads(body) == {"key": "x", "count": 7}


@pytest.mark.integration
async def test_send_to_a_type_never_hosted_is_returned_by_the_broker(
    rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool
) -> None:
    await runtimes.start(register_counter)  # declares the exchanges
    with pytest.raises(pika.exceptions.UnroutableError):
        await asyncio.to_thread(
            _rpc, rabbitmq.amqp_url, namespace, "nobody", "alpha", ce_headers("ReadCount"), b"{}"
        )

"""A message whose content type claims pickle is never unpickled: it goes to ``<ns>.dead-letter``
with the reason ``unsupported_content_type`` (a request is also answered at once with
``MessageRejectedError``), and the worker keeps going.

The payload is a real pickle whose unpickling creates a file (the classic ``__reduce__`` gadget,
made harmless), published with pika straight onto the namespace's exchanges, as a producer
that uses pickle (aio-pika's RPC helpers, Celery's pickle serializer) would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from agnext_broker import AgentId
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Increment,
    ReadCount,
    register_counter,
)
from tests.integration.test_broker_wire import SOURCE, Pika, _get, ce_headers, doc_routing_key
from tests.integration.workers import PARTITIONS, RuntimePool, runtimes_fixture  # noqa: F401
from tests.servers import AnyRabbitMQ

pytestmark = pytest.mark.integration

KEY = "pickled"
REJECTED_ERROR_TYPE = "agnext_broker.base._exceptions:MessageRejectedError"


class CreatesFile:
    """Unpickling it calls ``open(path, "w")``: the file appears if anything unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (self.path, "w")


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def partition_queue(namespace: str) -> str:
    partition = zlib.crc32(KEY.encode("utf-8")) & (PARTITIONS - 1)
    return f"{namespace}.agent.{COUNTER_TYPE}.{partition}"


def publish(url: str, namespace: str, case: str, payload: bytes) -> tuple[bytes, Any]:
    """Publish ``payload`` as the ``case`` says; return the body published and, for a request,
    the response (its properties and body)."""
    with Pika(url) as client:
        if case == "event, aio-pika's pickle":
            headers = ce_headers(
                "Increment", agkind="publish", agtopictype=INCREMENTS_TOPIC, agtopicsource=KEY
            )
            client.publish(
                f"{namespace}.events",
                doc_routing_key(KEY, INCREMENTS_TOPIC),
                payload,
                headers,
                content_type="application/python-pickle",
            )
            return payload, None
        if case == "request, Celery's pickle":
            reply_queue = client.channel.queue_declare("", exclusive=True).method.queue
            correlation = uuid.uuid4().hex
            headers = ce_headers(
                "Increment",
                agkind="send",
                agrecipient=f"{COUNTER_TYPE}/{KEY}",
                agcorrelation=correlation,
            )
            client.publish(
                f"{namespace}.direct",
                doc_routing_key(KEY, COUNTER_TYPE),
                payload,
                headers,
                content_type="application/x-python-serialize",
                reply_to=reply_queue,
                correlation_id=correlation,
                mandatory=True,
            )
            return payload, client.get(reply_queue)
        assert case == "structured, pickle as datacontenttype"
        event = {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "source": SOURCE,
            "type": "Increment",
            "datacontenttype": "application/python-pickle",
            "agkind": "send",
            "agrecipient": f"{COUNTER_TYPE}/{KEY}",
            "data_base64": base64.b64encode(payload).decode(),
        }
        body = json.dumps(event).encode()
        client.publish(
            f"{namespace}.direct",
            doc_routing_key(KEY, COUNTER_TYPE),
            body,
            {},
            content_type="application/cloudevents+json",
        )
        return body, None


CASES = {
    "event, aio-pika's pickle": "application/python-pickle",
    "request, Celery's pickle": "application/x-python-serialize",
    "structured, pickle as datacontenttype": "application/python-pickle",
}


def test_the_payload_does_create_the_file_when_unpickled(tmp_path: Path) -> None:
    # So that the file not appearing below means that nothing unpickled the payload.
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(CreatesFile(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("case", list(CASES))
async def test_a_pickle_is_dead_lettered_undecoded(
    case: str, rabbitmq: AnyRabbitMQ, namespace: str, runtimes: RuntimePool, tmp_path: Path
) -> None:
    worker = await runtimes.start(register_counter)
    agent = AgentId(COUNTER_TYPE, KEY)
    assert await worker.send_message(Increment(1), agent) == 1  # its partition is consumed

    marker = tmp_path / "unpickled"
    payload = pickle.dumps(CreatesFile(marker))
    body, response = await asyncio.to_thread(publish, rabbitmq.amqp_url, namespace, case, payload)

    properties, letter = await asyncio.to_thread(
        _get, rabbitmq.amqp_url, f"{namespace}.dead-letter"
    )
    headers = {k: text(v) for k, v in (properties.headers or {}).items()}
    assert headers.get("x-agnext-reason") == "unsupported_content_type", headers
    assert CASES[case] in headers.get("x-agnext-detail", ""), headers
    assert "nothing is ever unpickled" in headers.get("x-agnext-detail", ""), headers
    assert headers.get("x-agnext-queue") == partition_queue(namespace), headers
    assert letter == body  # kept as it came, for whoever looks at it
    if case.startswith("request"):  # the caller is told at once
        assert response is not None, "the request got no response"
        reply_properties, reply = response
        reply_headers = reply_properties.headers or {}
        assert text(reply_headers.get("ce-agerrortype")) == REJECTED_ERROR_TYPE, reply_headers
        assert "unsupported_content_type" in reply.decode(), reply

    assert not marker.exists(), "the payload was unpickled"
    # Not applied, and the worker keeps going.
    assert await worker.send_message(ReadCount(), agent) == 1
    assert await worker.send_message(Increment(1), agent) == 2
    assert not marker.exists(), "the payload was unpickled"

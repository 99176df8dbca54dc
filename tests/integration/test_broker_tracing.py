"""Traces across workers: the W3C trace context of a send or publish span travels in the
``ce-traceparent`` attribute, and the span of its handling on another worker is its child.
Without a tracer provider, nothing of it goes on the wire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agnext_broker import AgentId, TopicId
from agnext_broker.application.broker import BrokerAgentRuntime
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Increment,
    ReadCount,
    register_counter,
)
from tests.integration.apps_tracing import FRONT_TYPE, SPANS_FILE, span_record
from tests.integration.test_broker_wire import _declare_bound_queue, _get
from tests.integration.workers import (
    Process,
    RuntimePool,
    WorkerPool,
    bounded,
    broker_settings,
    forget_namespace,
    runtimes_fixture,  # noqa: F401
    shared_owners,
    wait_until,
    workers_fixture,  # noqa: F401
)
from tests.servers import AmqpCleanup, AnyRabbitMQ, AnyRedis

pytestmark = pytest.mark.integration

TRACED_APP = "tests.integration.apps_tracing"


def _in_memory_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@asynccontextmanager
async def _traced_runtime(
    rabbitmq: AnyRabbitMQ, redis_server: AnyRedis, namespace: str, provider: TracerProvider
) -> AsyncIterator[BrokerAgentRuntime]:
    settings = broker_settings(rabbitmq.amqp_url, redis_server.redis_url, namespace)
    runtime = BrokerAgentRuntime(settings, tracer_provider=provider)
    try:
        await bounded(runtime.start(), "runtime.start()")
        yield runtime
    finally:
        await bounded(runtime.stop(), "runtime.stop()")
        await bounded(runtime.close(), "runtime.close()")


async def _start_traced_worker(
    workers: WorkerPool, client: redis.asyncio.Redis, app: str, spans_file: Path
) -> Process:
    worker = workers.start_module(app, TRACED_APP, [app], env={SPANS_FILE: str(spans_file)})
    await workers.wait_registered(client, worker)
    owner = {worker.worker_id}
    await shared_owners(
        client, workers.namespace, app, owner, timeout=20, stable_for=0, details=workers.logs
    )
    return worker


async def _spans_at_exit(workers: WorkerPool, worker: Process, spans_file: Path) -> list[Any]:
    assert await workers.terminate(worker) == 0, workers.logs()
    return list(json.loads(await asyncio.to_thread(spans_file.read_text)))


def _one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matching = [s for s in spans if s["name"] == name]
    assert len(matching) == 1, f"{name}: {[s['name'] for s in spans]}"
    return matching[0]


def _child_of(child: dict[str, Any], parent: dict[str, Any], *, remote: bool) -> bool:
    return (
        child["trace_id"] == parent["trace_id"]
        and child["parent_span_id"] == parent["span_id"]
        and child["parent_is_remote"] is remote
    )


async def test_one_trace_across_two_workers(
    rabbitmq: AnyRabbitMQ,
    redis_server: AnyRedis,
    namespace: str,
    redis_client: redis.asyncio.Redis,
    workers: WorkerPool,
    amqp_cleanup: AmqpCleanup,
    tmp_path: Path,
) -> None:
    forget_namespace(amqp_cleanup, [FRONT_TYPE])
    files = {app: tmp_path / f"{app}-spans.json" for app in (COUNTER_TYPE, FRONT_TYPE)}
    worker_b = await _start_traced_worker(workers, redis_client, COUNTER_TYPE, files[COUNTER_TYPE])
    worker_a = await _start_traced_worker(workers, redis_client, FRONT_TYPE, files[FRONT_TYPE])

    provider, exporter = _in_memory_provider()
    async with _traced_runtime(rabbitmq, redis_server, namespace, provider) as caller:
        with provider.get_tracer("test").start_as_current_span("caller"):
            answer = await caller.send_message(Increment(5), AgentId(FRONT_TYPE, "k"))
    assert answer == 5

    on_a = await _spans_at_exit(workers, worker_a, files[FRONT_TYPE])
    on_b = await _spans_at_exit(workers, worker_b, files[COUNTER_TYPE])
    here = [span_record(span) for span in exporter.get_finished_spans()]
    caller_span = _one(here, "caller")
    caller_send = _one(here, f"send {FRONT_TYPE}/k")
    a_process = _one(on_a, f"process {FRONT_TYPE}/k")
    a_send = _one(on_a, f"send {COUNTER_TYPE}/k")
    b_process = _one(on_b, f"process {COUNTER_TYPE}/k")

    assert caller_span["parent_span_id"] is None
    assert _child_of(caller_send, caller_span, remote=False)
    assert _child_of(a_process, caller_send, remote=True)
    assert _child_of(a_send, a_process, remote=False)
    assert _child_of(b_process, a_send, remote=True)
    # Activating an agent belongs to the trace of the message that needed it.
    assert _child_of(_one(on_b, f"create {COUNTER_TYPE}/k"), a_send, remote=True)

    assert [caller_send["kind"], a_send["kind"]] == ["PRODUCER", "PRODUCER"]
    assert [a_process["kind"], b_process["kind"]] == ["CONSUMER", "CONSUMER"]
    assert a_process["attributes"] == {
        "messaging.system": "agnext",
        "messaging.operation": "process",
        "messaging.destination.name": f"{FRONT_TYPE}/k",
        "messaging.message.id": caller_send["attributes"]["messaging.message.id"],
        "agnext.runtime": "broker",
    }
    sent_id = a_send["attributes"]["messaging.message.id"]
    assert b_process["attributes"]["messaging.message.id"] == sent_id


async def test_traceparent_is_on_the_wire_only_with_a_tracer_provider(
    rabbitmq: AnyRabbitMQ,
    redis_server: AnyRedis,
    namespace: str,
    runtimes: RuntimePool,
    amqp_cleanup: AmqpCleanup,
) -> None:
    untraced = await runtimes.start(register_counter)
    queue = amqp_cleanup.queue(f"{namespace}.test.increments")
    await asyncio.to_thread(
        _declare_bound_queue,
        rabbitmq.amqp_url,
        queue,
        f"{namespace}.events",
        f"#.{INCREMENTS_TOPIC}",
    )
    topic = TopicId(INCREMENTS_TOPIC, "x")

    await untraced.publish_message(Increment(1), topic)
    properties, _ = await asyncio.to_thread(_get, rabbitmq.amqp_url, queue)
    headers = properties.headers or {}
    assert headers.get("ce-type") == "Increment"
    assert not {"ce-traceparent", "ce-tracestate"} & set(headers)

    provider, exporter = _in_memory_provider()
    async with _traced_runtime(rabbitmq, redis_server, namespace, provider) as traced:
        await traced.publish_message(Increment(2), topic)
        properties, _ = await asyncio.to_thread(_get, rabbitmq.amqp_url, queue)
        publish = _one([span_record(s) for s in exporter.get_finished_spans()], f"publish {topic}")
        traceparent = (properties.headers or {}).get("ce-traceparent")
        assert isinstance(traceparent, str)
        assert traceparent.split("-")[1:3] == [publish["trace_id"], publish["span_id"]]

        # A worker without a tracer provider handles traced messages as any others.
        async def counted_three() -> bool:
            count = await traced.send_message(ReadCount(), AgentId(COUNTER_TYPE, "x"))
            return bool(count == 3)

        await wait_until(counted_three, timeout=20, what="counter/x counted both increments")

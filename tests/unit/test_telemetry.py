"""The W3C trace context a message carries: written inside the producer span, read back as the
parent of the process span; malformed or absent, it is ignored."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, TraceState, format_span_id, format_trace_id

from agnext_broker import AgentId
from agnext_broker.application._telemetry import Telemetry


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(exporter: InMemorySpanExporter) -> Telemetry:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Telemetry(provider, "broker")


def test_no_span_no_traceparent() -> None:
    assert Telemetry.outgoing() == (None, None)


def test_the_process_span_is_a_child_of_the_send_span(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    with telemetry.span("send", AgentId("echo", "k"), "m-1"):
        traceparent, tracestate = Telemetry.outgoing()
    assert tracestate is None
    with (
        telemetry.continuing(traceparent, tracestate),
        telemetry.span("process", AgentId("echo", "k"), "m-1"),
    ):
        pass

    send, process = exporter.get_finished_spans()
    sent = send.context
    ids = f"{format_trace_id(sent.trace_id)}-{format_span_id(sent.span_id)}"
    assert traceparent == f"00-{ids}-{sent.trace_flags:02x}"
    assert process.parent is not None
    assert process.parent.is_remote
    assert (process.parent.trace_id, process.parent.span_id) == (
        send.context.trace_id,
        send.context.span_id,
    )
    assert (send.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert process.attributes == {
        "messaging.system": "agnext",
        "messaging.operation": "process",
        "messaging.destination.name": "echo/k",
        "messaging.message.id": "m-1",
        "agnext.runtime": "broker",
    }


def test_tracestate_travels_with_the_traceparent(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with (
        telemetry.continuing(incoming, "congo=t61rcWkgMzE"),
        telemetry.span("send", AgentId("echo", "k"), "m-2"),
    ):
        traceparent, tracestate = Telemetry.outgoing()
    assert traceparent is not None
    assert traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert tracestate == "congo=t61rcWkgMzE"
    (send,) = exporter.get_finished_spans()
    assert send.context.trace_state == TraceState([("congo", "t61rcWkgMzE")])


@pytest.mark.parametrize("traceparent", [None, "", "garbage", "00-0000-0000-01", "ff-" + "a" * 49])
def test_a_missing_or_malformed_traceparent_starts_a_new_trace(
    telemetry: Telemetry, exporter: InMemorySpanExporter, traceparent: str | None
) -> None:
    with (
        telemetry.continuing(traceparent, "junk=\x00"),
        telemetry.span("process", AgentId("echo", "k"), "m-3"),
    ):
        pass
    (process,) = exporter.get_finished_spans()
    assert process.parent is None

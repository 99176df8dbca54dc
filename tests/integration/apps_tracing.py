"""A traced worker process for tests/integration/test_broker_tracing.py.

``python -m tests.integration.apps_tracing front|counter`` hosts ``front`` agents (each passes
an ``Increment`` RPC on to ``counter/<its key>``) or the ``counter`` agents of apps.py, on a
broker runtime with an OpenTelemetry SDK tracer provider that keeps its spans in memory
(``InMemorySpanExporter``). On SIGTERM it drains, then writes its finished spans as JSON to the
file named by ``AGNEXT_TEST_SPANS_FILE``; settings come from the ``AGNEXT_*`` variables.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from agnext_broker import AgentId, AgentRuntime, MessageContext, RoutedAgent, rpc
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings
from tests.integration.apps import COUNTER_TYPE, Increment, register_counter_only

FRONT_TYPE = "front"
SPANS_FILE = "AGNEXT_TEST_SPANS_FILE"


class Front(RoutedAgent):
    """Answers an ``Increment`` with what ``counter/<its key>`` (on another worker) answers."""

    def __init__(self) -> None:
        super().__init__("Passes increments on to a counter")

    @rpc
    async def on_increment(self, message: Increment, ctx: MessageContext) -> int:
        count: int = await self.send_message(message, AgentId(COUNTER_TYPE, self.id.key))
        return count


async def register_front(runtime: AgentRuntime) -> None:
    await Front.register(runtime, FRONT_TYPE, Front)


APPS = {FRONT_TYPE: register_front, COUNTER_TYPE: register_counter_only}


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """What the test compares: names, ids (hex, as in a traceparent), parent link, kind."""
    assert span.context is not None
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format_trace_id(span.context.trace_id),
        "span_id": format_span_id(span.context.span_id),
        "parent_span_id": format_span_id(parent.span_id) if parent is not None else None,
        "parent_is_remote": parent.is_remote if parent is not None else None,
        "attributes": dict(span.attributes or {}),
    }


async def _serve(app: str) -> list[dict[str, Any]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = BrokerAgentRuntime(BrokerSettings.from_env(), tracer_provider=provider)
    await APPS[app](runtime)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await runtime.start()
    print(f"traced {app} worker ready", file=sys.stderr, flush=True)
    await stopping.wait()
    await runtime.stop()
    await runtime.close()
    return [span_record(span) for span in exporter.get_finished_spans()]


def main() -> None:
    (app,) = sys.argv[1:]
    records = asyncio.run(_serve(app))
    spans_file = Path(os.environ[SPANS_FILE])
    written = spans_file.with_suffix(".partial")
    written.write_text(json.dumps(records, indent=1))
    written.replace(spans_file)  # the test reads a whole file or none


if __name__ == "__main__":
    main()

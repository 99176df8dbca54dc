"""OpenTelemetry spans for create, send, publish and process (only with a tracer provider), and
the W3C trace context that links a process span to the send or publish span of its message.

Every method is to be called only when ``enabled``: without a tracer provider the runtimes skip
them, so that tracing costs nothing on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_NO_SPAN: AbstractContextManager[Any] = nullcontext()

_KINDS = {
    "create": SpanKind.INTERNAL,
    "send": SpanKind.PRODUCER,
    "publish": SpanKind.PRODUCER,
    "process": SpanKind.CONSUMER,
}

# W3C trace context only (traceparent, tracestate): the global propagator may also be set to
# carry baggage or other formats, which the wire format has no attribute for.
_PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

TraceContext = otel_context.Context


class Telemetry:
    """Names spans ``"<operation> <destination>"`` as OpenTelemetry's messaging conventions do."""

    def __init__(self, tracer_provider: TracerProvider | None, runtime_name: str) -> None:
        self.enabled = tracer_provider is not None
        self._tracer = (
            tracer_provider.get_tracer("agnext_broker") if tracer_provider is not None else None
        )
        self._runtime_name = runtime_name

    def span(
        self,
        operation: str,
        destination: object,
        message_id: str | None = None,
        **attributes: str,
    ) -> AbstractContextManager[Any]:
        if self._tracer is None:
            return _NO_SPAN
        if message_id is not None:
            attributes["messaging.message.id"] = message_id
        return self._tracer.start_as_current_span(
            f"{operation} {destination}",
            kind=_KINDS.get(operation, SpanKind.INTERNAL),
            attributes={
                "messaging.system": "agnext",
                "messaging.operation": operation,
                "messaging.destination.name": str(destination),
                "agnext.runtime": self._runtime_name,
                **attributes,
            },
        )

    @staticmethod
    def outgoing() -> tuple[str | None, str | None]:
        """The ``traceparent`` and ``tracestate`` of the current span (the send or publish span
        of the message about to go out); ``(None, None)`` outside any span."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get(TRACEPARENT), carrier.get(TRACESTATE)

    @staticmethod
    def current() -> TraceContext:
        """The current context, for a handler that runs later in another task."""
        return otel_context.get_current()

    @staticmethod
    def continuing(traceparent: str | None, tracestate: str | None) -> AbstractContextManager[Any]:
        """Within it, the span that ``traceparent`` names is the parent of new spans (nothing
        changes when it is absent; a malformed one is ignored, and new spans start a trace)."""
        if traceparent is None:
            return _NO_SPAN
        carrier = {TRACEPARENT: traceparent}
        if tracestate:
            carrier[TRACESTATE] = tracestate
        return _attached(_PROPAGATOR.extract(carrier))

    @staticmethod
    def within(context: TraceContext) -> AbstractContextManager[Any]:
        """Within it, ``context`` (from :meth:`current`) is the current context."""
        return _attached(context)


@contextmanager
def _attached(context: TraceContext) -> Iterator[None]:
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)

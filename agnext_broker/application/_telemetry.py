"""OpenTelemetry spans for create, send, publish and process (only with a tracer provider)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry.trace import SpanKind, TracerProvider

_NO_SPAN: AbstractContextManager[Any] = nullcontext()

_KINDS = {
    "create": SpanKind.INTERNAL,
    "send": SpanKind.PRODUCER,
    "publish": SpanKind.PRODUCER,
    "process": SpanKind.CONSUMER,
}


class Telemetry:
    """Names spans ``"<operation> <destination>"`` as OpenTelemetry's messaging conventions do."""

    def __init__(self, tracer_provider: TracerProvider | None, runtime_name: str) -> None:
        self.enabled = tracer_provider is not None
        self._tracer = (
            tracer_provider.get_tracer("agnext_broker") if tracer_provider is not None else None
        )
        self._runtime_name = runtime_name

    def span(
        self, operation: str, destination: object, **attributes: str
    ) -> AbstractContextManager[Any]:
        if self._tracer is None:
            return _NO_SPAN
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

"""A worker's tracer provider, made from OpenTelemetry's standard ``OTEL_*`` variables.

Traces are exported only when the variables ask for them: ``OTEL_TRACES_EXPORTER`` set to
``otlp`` or ``console`` (a comma-separated list), or, with it unset, an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). The SDK and the
OTLP exporter (HTTP/protobuf) come with the ``otel`` extra; they are imported only then, and
read the rest of their configuration (endpoint, headers, timeout, sampler, resource attributes)
from the environment themselves.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

DEFAULT_SERVICE_NAME = "agnext-broker-worker"
INSTALL_HINT = "pip install 'agnext-broker[otel]'"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_EXPORTERS = ("otlp", "console")


class TracingConfigError(click.ClickException):
    """The ``OTEL_*`` variables ask for traces that cannot be exported (the message, one line,
    says what to change or install; click prints it as ``Error: ...`` and exits 1)."""

    exit_code = 1


def tracer_provider_from_env() -> TracerProvider | None:
    """An SDK tracer provider exporting in batches to what the ``OTEL_*`` variables name, with
    ``service.name`` from ``OTEL_SERVICE_NAME`` (default ``agnext-broker-worker``); ``None``
    when they ask for no traces.

    Raises:
        TracingConfigError: an unsupported exporter or protocol, or the ``otel`` extra is not
            installed.
    """
    exporters = _requested_exporters()
    if not exporters:
        return None
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:
        raise TracingConfigError(
            f"OTEL_* variables ask for traces but the OpenTelemetry SDK is missing: {INSTALL_HINT}"
        ) from e
    service_name = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return provider


def shutdown_tracing(provider: TracerProvider | None, timeout: float = 10.0) -> None:
    """Export the spans still buffered (waiting at most ``timeout`` seconds), then stop."""
    if provider is None:
        return
    provider.force_flush(timeout_millis=int(timeout * 1000))
    provider.shutdown()


def _requested_exporters() -> list[str]:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    setting = os.environ.get("OTEL_TRACES_EXPORTER")
    if setting is None:
        return ["otlp"] if any(os.environ.get(name) for name in _ENDPOINTS) else []
    names = [name.strip().lower() for name in setting.split(",") if name.strip()]
    if "none" in names:
        return []
    unknown = [name for name in names if name not in _EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={setting!r}: agnext-broker exports traces to "
            f"{', '.join(_EXPORTERS)} or none, not {', '.join(unknown)}"
        )
    return list(dict.fromkeys(names))


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    variable = next((v for v in _PROTOCOLS if os.environ.get(v)), None)
    if variable is not None and os.environ[variable] != "http/protobuf":
        raise TracingConfigError(
            f"{variable}={os.environ[variable]!r}: agnext-broker exports OTLP over "
            "http/protobuf only"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as e:
        raise TracingConfigError(
            f"OTEL_* variables ask for OTLP traces but the OTLP exporter is missing: {INSTALL_HINT}"
        ) from e
    return OTLPSpanExporter()

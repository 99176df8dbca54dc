"""The worker's tracer provider from the OTEL_* variables: none unless they ask for traces."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from agnext_broker.cli._tracing import (
    TracingConfigError,
    shutdown_tracing,
    tracer_provider_from_env,
)

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture(autouse=True)
def _no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def providers() -> Iterator[list[TracerProvider]]:
    """Providers a test made, shut down after it (their batch threads end)."""
    made: list[TracerProvider] = []
    yield made
    for provider in made:
        shutdown_tracing(provider, timeout=1.0)


def _exporters(provider: TracerProvider) -> list[object]:
    # The SDK keeps no public list of its processors; the batch processors' exporters are
    # what this module chose.
    processors = provider._active_span_processor._span_processors
    return [processor._batch_processor._exporter for processor in processors]


def test_no_variables_no_provider() -> None:
    assert tracer_provider_from_env() is None


@pytest.mark.parametrize("value", ["none", "NONE", "console,none"])
def test_exporter_none_means_no_provider(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracer_provider_from_env() is None


def test_sdk_disabled_means_no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert tracer_provider_from_env() is None


def test_console_exporter(monkeypatch: pytest.MonkeyPatch, providers: list[TracerProvider]) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracer_provider_from_env()
    assert isinstance(provider, TracerProvider)
    providers.append(provider)
    assert [type(e) for e in _exporters(provider)] == [ConsoleSpanExporter]
    assert provider.resource.attributes["service.name"] == "agnext-broker-worker"


def test_an_endpoint_alone_asks_for_otlp(
    monkeypatch: pytest.MonkeyPatch, providers: list[TracerProvider]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tally-workers")
    provider = tracer_provider_from_env()
    assert provider is not None
    providers.append(provider)
    (exporter,) = _exporters(provider)
    assert isinstance(exporter, OTLPSpanExporter)
    assert exporter._endpoint == "http://collector:4318/v1/traces"
    assert provider.resource.attributes["service.name"] == "tally-workers"


def test_otlp_and_console_together(
    monkeypatch: pytest.MonkeyPatch, providers: list[TracerProvider]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, console")
    provider = tracer_provider_from_env()
    assert provider is not None
    providers.append(provider)
    assert [type(e) for e in _exporters(provider)] == [OTLPSpanExporter, ConsoleSpanExporter]


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin", "not zipkin"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf only"),
    ],
)
def test_what_cannot_be_exported_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv(variable, value)
    with pytest.raises(TracingConfigError, match=said) as raised:
        tracer_provider_from_env()
    assert "\n" not in raised.value.message
    assert raised.value.exit_code == 1


@pytest.mark.parametrize(
    ("missing", "exporter"),
    [("opentelemetry.sdk.trace", "console"), ("opentelemetry.exporter.otlp.proto.http", "otlp")],
)
def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, missing: str, exporter: str
) -> None:
    for name in [m for m in sys.modules if m == missing or m.startswith(missing + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # what `import` then refuses
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", exporter)
    with pytest.raises(TracingConfigError) as raised:
        tracer_provider_from_env()
    assert raised.value.message.endswith("pip install 'agnext-broker[otel]'")


def test_shutdown_exports_what_is_buffered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracer_provider_from_env()
    assert provider is not None
    (exporter,) = _exporters(provider)
    exported: list[str] = []
    monkeypatch.setattr(exporter, "export", lambda spans: exported.extend(s.name for s in spans))
    with provider.get_tracer("test").start_as_current_span("buffered"):
        pass
    shutdown_tracing(provider)
    assert exported == ["buffered"]
    shutdown_tracing(None)  # nothing to do

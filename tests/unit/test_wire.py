"""The runtime's CloudEvents codec against the cloudevents package's RabbitMQ binding: the same
headers, content type and body out, the same events in, the same messages refused."""

from __future__ import annotations

from typing import Any

import pytest
from cloudevents.core.bindings import rabbitmq as binding
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from agnext_broker import AgentId, TopicId
from agnext_broker.application.broker._wire import Envelope, InvalidMessage, decode

ENVELOPES = [
    Envelope("m-1", "client/1", "Ping", "send", b'{"n":1}', "application/json",
             recipient=AgentId("echo", "k"), correlation="m-1"),
    Envelope("m-2", "tallier/a", "WorkItem", "send", b"{}", "application/json",
             recipient=AgentId("reporter", "default"), sender=AgentId("tallier", "a"),
             path=("0f1e2d3c4b5a6978", "aa"), correlation="m-2",
             traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
             tracestate="congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    Envelope("m-3", "coordinator/x", "Tick", "publish", b'{"n":3}', "application/json",
             topic=TopicId("work:items", "alpha/β"), sender=AgentId("coordinator", "x")),
    Envelope("m-4:response", "echo/k", "json", "response", b"null", "application/json",
             sender=AgentId("echo", "k"), correlation="m-4"),
    Envelope("m-5:response", "echo/k", "ValueError", "error", b"bad \xc3\xa9", "text/plain",
             sender=AgentId("echo", "k"), correlation="m-5", error_type="ValueError"),
]  # fmt: skip


def _attributes(envelope: Envelope) -> dict[str, Any]:
    """The envelope as CloudEvent attributes, named as docs/wire-format.md names them."""
    attributes: dict[str, Any] = {
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "specversion": "1.0",
        "datacontenttype": envelope.content_type,
        "agkind": envelope.kind,
    }
    optional = {
        "agrecipient": envelope.recipient and str(envelope.recipient),
        "agtopictype": envelope.topic and envelope.topic.type,
        "agtopicsource": envelope.topic and envelope.topic.source,
        "agsender": envelope.sender and str(envelope.sender),
        "agpath": ",".join(envelope.path) or None,
        "agcorrelation": envelope.correlation,
        "agerrortype": envelope.error_type,
        "traceparent": envelope.traceparent,
        "tracestate": envelope.tracestate,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    return attributes


def _sdk_binary(envelope: Envelope) -> binding.RabbitMQMessage:
    return binding.to_binary(CloudEvent(_attributes(envelope), envelope.data), JSONFormat())


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda e: e.id)
def test_encoding_is_the_bindings_without_a_timestamp(envelope: Envelope) -> None:
    ours, sdk = envelope.to_amqp(), _sdk_binary(envelope)
    assert "ce-time" in sdk.headers  # the SDK stamps every event; the runtime does not
    assert ours.headers == {k: v for k, v in sdk.headers.items() if k != "ce-time"}
    assert (ours.content_type, ours.body) == (sdk.content_type, sdk.body)


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda e: e.id)
def test_decoding_reads_back_ours_and_the_bindings(envelope: Envelope) -> None:
    ours, sdk = envelope.to_amqp(), _sdk_binary(envelope)
    assert decode(ours.headers, ours.content_type, ours.body) == envelope
    assert decode(sdk.headers, sdk.content_type, sdk.body) == envelope  # ce-time: the SDK path
    as_bytes = {k: v.encode() for k, v in ours.headers.items()}  # long strings arrive as bytes
    assert decode(as_bytes, ours.content_type, ours.body) == envelope


# Structured mode has no way to tell JSON null data from no data: m-4 is left out.
JSON_ENVELOPES = [
    e for e in ENVELOPES if e.content_type == "application/json" and e.data != b"null"
]


@pytest.mark.parametrize("envelope", JSON_ENVELOPES, ids=lambda e: e.id)
def test_structured_mode_reads_the_same_event(envelope: Envelope) -> None:
    event = CloudEvent(_attributes(envelope), JSONFormat().read_data(envelope.data, None))
    message = binding.to_structured(event, JSONFormat())
    assert decode(message.headers, message.content_type, message.body) == envelope


def _valid_headers() -> dict[str, str]:
    return dict(ENVELOPES[0].to_amqp().headers)


def _without(name: str) -> dict[str, str]:
    headers = _valid_headers()
    del headers[name]
    return headers


# Refused by the SDK as well...
REFUSED_BY_BOTH = {
    "empty source": ({**_valid_headers(), "ce-source": ""}, "application/json"),
    "no type": (_without("ce-type"), "application/json"),
    "specversion 0.3": ({**_valid_headers(), "ce-specversion": "0.3"}, "application/json"),
    "empty content type": (_valid_headers(), ""),
    "reserved extension": ({**_valid_headers(), "ce-data": "x"}, "application/json"),
    "bad extension name": ({**_valid_headers(), "ce-my_ext": "x"}, "application/json"),
    "bad time": ({**_valid_headers(), "ce-time": "yesterday"}, "application/json"),
}
# ... and only by the runtime: the SDK invents an id and a specversion where there is none, but a
# redelivered message must keep its id; an agent id must read "type/key".
REFUSED_BY_US = {
    "no id": (_without("ce-id"), "application/json"),
    "no specversion": (_without("ce-specversion"), "application/json"),
    "bad recipient": ({**_valid_headers(), "ce-agrecipient": "no-slash"}, "application/json"),
}


def _refused(headers: dict[str, str], content_type: str) -> None:
    with pytest.raises(InvalidMessage) as refused:
        decode(headers, content_type, b"{}")
    assert refused.value.reason == "invalid_cloudevent"


@pytest.mark.parametrize(
    ("headers", "content_type"), REFUSED_BY_BOTH.values(), ids=list(REFUSED_BY_BOTH)
)
def test_events_the_binding_refuses_are_refused(headers: dict[str, str], content_type: str) -> None:
    _refused(headers, content_type)
    message = binding.RabbitMQMessage(headers, content_type, b"{}")
    with pytest.raises((BaseCloudEventException, ValueError)):
        binding.from_binary(message, JSONFormat(), CloudEvent)


@pytest.mark.parametrize(
    ("headers", "content_type"), REFUSED_BY_US.values(), ids=list(REFUSED_BY_US)
)
def test_events_without_what_the_runtime_needs_are_refused(
    headers: dict[str, str], content_type: str
) -> None:
    _refused(headers, content_type)


def test_attributes_of_other_producers_are_accepted() -> None:
    headers = {
        **_valid_headers(),
        "ce-time": "2026-11-22T04:10:40Z",
        "ce-subject": "order-7",
        "ce-partnerext": "anything",
        "x-other": "not an attribute",
    }
    assert decode(headers, "application/json", b'{"n":1}') == ENVELOPES[0]

"""CloudEvents on AMQP in the RabbitMQ protocol binding of the cloudevents package: binary content
mode (``ce-`` headers, the payload as the body) written and read, structured mode
(``application/cloudevents+json``) read too. See docs/wire-format.md for the whole convention.

The messages the runtime writes, and those that carry no attribute beyond the ones it uses, are
encoded and decoded here, with the binding's rules and validation (tests/unit/test_wire.py holds
them equal to the binding's output); every other message is decoded by the binding itself. The
SDK's event object validates and timestamps each event, which costs more per message than
everything else the runtime does to it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.core.bindings import rabbitmq as binding
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from ...base import AgentId, TopicId
from . import _names as n

STRUCTURED_PREFIX = "application/cloudevents"


class InvalidMessage(Exception):
    """A message that is not a CloudEvent agnext-broker can act on.

    Attributes:
        reason: a short code for the dead-letter header (``invalid_cloudevent``, ...).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _RawDataFormat(JSONFormat):
    """JSON format whose binary-mode data stays the raw body: serializers decode it once."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> bytes | None:
        return body


_JSON = JSONFormat()
_RAW = _RawDataFormat()


@dataclass(slots=True)
class Envelope:
    """One message as the runtime sees it: CloudEvent attributes plus the raw payload."""

    id: str
    source: str
    type: str
    kind: str
    data: bytes
    content_type: str
    recipient: AgentId | None = None
    topic: TopicId | None = None
    sender: AgentId | None = None
    path: tuple[str, ...] = ()
    correlation: str | None = None
    error_type: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    def to_amqp(self) -> binding.RabbitMQMessage:
        """Encode in binary content mode, as ``binding.to_binary`` does (without ``ce-time``)."""
        headers = {
            "ce-id": self.id,
            "ce-source": self.source,
            "ce-type": self.type,
            "ce-specversion": SPECVERSION,
            _H_KIND: self.kind,
        }
        if self.recipient is not None:
            headers[_H_RECIPIENT] = str(self.recipient)
        if self.topic is not None:
            headers[_H_TOPIC_TYPE] = self.topic.type
            headers[_H_TOPIC_SOURCE] = self.topic.source
        if self.sender is not None:
            headers[_H_SENDER] = str(self.sender)
        if self.path:
            headers[_H_PATH] = ",".join(self.path)
        if self.correlation is not None:
            headers[_H_CORRELATION] = self.correlation
        if self.error_type is not None:
            headers[_H_ERROR_TYPE] = self.error_type
        if self.traceparent is not None:
            headers[_H_TRACEPARENT] = self.traceparent
        if self.tracestate is not None:
            headers[_H_TRACESTATE] = self.tracestate
        return binding.RabbitMQMessage(headers, self.content_type, self.data)


SPECVERSION = "1.0"
_H_KIND = binding.CE_PREFIX + n.EXT_KIND
_H_RECIPIENT = binding.CE_PREFIX + n.EXT_RECIPIENT
_H_TOPIC_TYPE = binding.CE_PREFIX + n.EXT_TOPIC_TYPE
_H_TOPIC_SOURCE = binding.CE_PREFIX + n.EXT_TOPIC_SOURCE
_H_SENDER = binding.CE_PREFIX + n.EXT_SENDER
_H_PATH = binding.CE_PREFIX + n.EXT_PATH
_H_CORRELATION = binding.CE_PREFIX + n.EXT_CORRELATION
_H_ERROR_TYPE = binding.CE_PREFIX + n.EXT_ERROR_TYPE
_H_TRACEPARENT = binding.CE_PREFIX + n.EXT_TRACEPARENT
_H_TRACESTATE = binding.CE_PREFIX + n.EXT_TRACESTATE

REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")


def _require_attributes(attributes: Any, shown_prefix: str) -> None:
    # The SDK fills in a missing id (and time) by itself; a message must bring its own id, or
    # a redelivery would look like a new message.
    if not isinstance(attributes, dict):
        raise InvalidMessage("invalid_cloudevent", "a structured CloudEvent is a JSON object")
    missing = [f"{shown_prefix}{name}" for name in REQUIRED_ATTRIBUTES if not attributes.get(name)]
    if missing:
        raise InvalidMessage("invalid_cloudevent", f"missing required attribute(s) {missing}")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _agent_id(value: Any, name: str) -> AgentId | None:
    if value is None:
        return None
    try:
        return AgentId.from_str(str(value))
    except ValueError as e:
        raise InvalidMessage("invalid_cloudevent", f"{name}: {e}") from e


def decode(headers: Mapping[str, object] | None, content_type: str | None, body: bytes) -> Envelope:
    """Decode an AMQP message (binary or structured mode) into an :class:`Envelope`.

    Raises:
        InvalidMessage: it is not a valid CloudEvent 1.0 with the attributes the runtime needs.
    """
    try:
        if (content_type or "").lower().startswith(STRUCTURED_PREFIX):
            attributes, data = _read_structured(body)
        else:
            attributes = _read_binary(headers, content_type, body)
            data = body
            if content_type is not None:
                attributes["datacontenttype"] = content_type
    except InvalidMessage:
        raise
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as e:
        raise InvalidMessage("invalid_cloudevent", str(e)) from e
    topic_type = attributes.get(n.EXT_TOPIC_TYPE)
    try:
        topic = (
            TopicId(str(topic_type), str(attributes.get(n.EXT_TOPIC_SOURCE, "default")))
            if topic_type is not None
            else None
        )
    except ValueError as e:
        raise InvalidMessage("invalid_cloudevent", f"{n.EXT_TOPIC_TYPE}: {e}") from e
    kind = str(attributes.get(n.EXT_KIND, n.KIND_PUBLISH if topic is not None else n.KIND_SEND))
    return Envelope(
        id=str(attributes["id"]),
        source=str(attributes["source"]),
        type=str(attributes["type"]),
        kind=kind,
        data=data,
        content_type=str(attributes.get("datacontenttype") or "application/json"),
        recipient=_agent_id(attributes.get(n.EXT_RECIPIENT), n.EXT_RECIPIENT),
        topic=topic,
        sender=_agent_id(attributes.get(n.EXT_SENDER), n.EXT_SENDER),
        path=_path(attributes.get(n.EXT_PATH)),
        correlation=_optional(attributes.get(n.EXT_CORRELATION)),
        error_type=_optional(attributes.get(n.EXT_ERROR_TYPE)),
        traceparent=_optional(attributes.get(n.EXT_TRACEPARENT)),
        tracestate=_optional(attributes.get(n.EXT_TRACESTATE)),
    )


# The attributes the runtime writes; a message with no others is checked here, by the rules the
# SDK applies to them (the extension names are valid by construction).
_OWN_ATTRIBUTES = frozenset(
    (
        *REQUIRED_ATTRIBUTES,
        n.EXT_KIND,
        n.EXT_RECIPIENT,
        n.EXT_TOPIC_TYPE,
        n.EXT_TOPIC_SOURCE,
        n.EXT_SENDER,
        n.EXT_PATH,
        n.EXT_CORRELATION,
        n.EXT_ERROR_TYPE,
        n.EXT_TRACEPARENT,
        n.EXT_TRACESTATE,
    )
)


def _validate_own(attributes: dict[str, str], content_type: str | None) -> None:
    if attributes["specversion"] != SPECVERSION:
        raise InvalidMessage(
            "invalid_cloudevent",
            f"ce-specversion is {attributes['specversion']!r}; agnext-broker reads CloudEvents "
            f"{SPECVERSION}",
        )
    if content_type == "":
        raise InvalidMessage("invalid_cloudevent", "content_type (datacontenttype) is empty")


def _read_binary(
    headers: Mapping[str, object] | None, content_type: str | None, body: bytes
) -> dict[str, Any]:
    """The attributes of a binary-mode event (``datacontenttype`` aside)."""
    ce_headers = {
        key: _text(value)
        for key, value in (headers or {}).items()
        if key.lower().startswith(binding.CE_PREFIX)
    }
    attributes = {key.lower()[len(binding.CE_PREFIX) :]: value for key, value in ce_headers.items()}
    _require_attributes(attributes, "ce-")
    if attributes.keys() <= _OWN_ATTRIBUTES:
        _validate_own(attributes, content_type)
        return attributes
    # Attributes of other producers (time, subject, extensions): the SDK checks them.
    message = binding.RabbitMQMessage(ce_headers, content_type, body)
    return binding.from_binary(message, _RAW, CloudEvent).get_attributes()


def _read_structured(body: bytes) -> tuple[dict[str, Any], bytes]:
    """The attributes and the data (as bytes) of a structured-mode event, through the SDK."""
    _require_attributes(json.loads(body), "")
    message = binding.RabbitMQMessage({}, "application/cloudevents+json", body)
    event = binding.from_structured(message, _JSON, CloudEvent)
    return event.get_attributes(), _structured_data(event)


MAX_PATH = 256


def _path(value: object) -> tuple[str, ...]:
    if not value:
        return ()
    path = tuple(str(value).split(","))
    if len(path) > MAX_PATH:
        raise InvalidMessage("invalid_cloudevent", f"{n.EXT_PATH} is longer than {MAX_PATH}")
    return path


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def _structured_data(event: Any) -> bytes:
    data = event.get_data()
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        content_type = event.get_datacontenttype() or "application/json"
        return data.encode() if "json" not in content_type else json.dumps(data).encode()
    return json.dumps(data, separators=(",", ":")).encode()

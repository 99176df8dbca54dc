"""CloudEvents on AMQP: the cloudevents package's RabbitMQ binding (binary content mode, ``ce-``
headers, the payload as the body), and structured mode (``application/cloudevents+json``) read
too. See docs/wire-format.md for the whole convention.
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

    def to_amqp(self) -> binding.RabbitMQMessage:
        """Encode in binary content mode through the binding."""
        attributes: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "specversion": "1.0",
            "datacontenttype": self.content_type,
            n.EXT_KIND: self.kind,
        }
        if self.recipient is not None:
            attributes[n.EXT_RECIPIENT] = str(self.recipient)
        if self.topic is not None:
            attributes[n.EXT_TOPIC_TYPE] = self.topic.type
            attributes[n.EXT_TOPIC_SOURCE] = self.topic.source
        if self.sender is not None:
            attributes[n.EXT_SENDER] = str(self.sender)
        if self.path:
            attributes[n.EXT_PATH] = ",".join(self.path)
        if self.correlation is not None:
            attributes[n.EXT_CORRELATION] = self.correlation
        if self.error_type is not None:
            attributes[n.EXT_ERROR_TYPE] = self.error_type
        if self.traceparent is not None:
            attributes[n.EXT_TRACEPARENT] = self.traceparent
        return binding.to_binary(CloudEvent(attributes, self.data), _JSON)


REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")


def _require_attributes(attributes: Any, prefix: str) -> None:
    # The SDK fills in a missing id (and time) by itself; a message must bring its own id, or
    # a redelivery would look like a new message.
    if not isinstance(attributes, dict):
        raise InvalidMessage("invalid_cloudevent", "a structured CloudEvent is a JSON object")
    missing = [
        f"{prefix}{name}" for name in REQUIRED_ATTRIBUTES if not attributes.get(prefix + name)
    ]
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
        text_headers = {
            key: _text(value)
            for key, value in (headers or {}).items()
            if key.lower().startswith(binding.CE_PREFIX)
        }
        message = binding.RabbitMQMessage(text_headers, content_type, body)
        if (content_type or "").lower().startswith(STRUCTURED_PREFIX):
            _require_attributes(json.loads(body), "")
            event = binding.from_structured(message, _JSON, CloudEvent)
            data = _structured_data(event)
        else:
            _require_attributes({k.lower(): v for k, v in text_headers.items()}, "ce-")
            event = binding.from_binary(message, _RAW, CloudEvent)
            raw = event.get_data()
            data = raw if isinstance(raw, bytes) else b""
    except InvalidMessage:
        raise
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as e:
        raise InvalidMessage("invalid_cloudevent", str(e)) from e
    attributes = event.get_attributes()
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
        id=event.get_id(),
        source=event.get_source(),
        type=event.get_type(),
        kind=kind,
        data=data,
        content_type=event.get_datacontenttype() or "application/json",
        recipient=_agent_id(attributes.get(n.EXT_RECIPIENT), n.EXT_RECIPIENT),
        topic=topic,
        sender=_agent_id(attributes.get(n.EXT_SENDER), n.EXT_SENDER),
        path=_path(attributes.get(n.EXT_PATH)),
        correlation=_optional(attributes.get(n.EXT_CORRELATION)),
        error_type=_optional(attributes.get(n.EXT_ERROR_TYPE)),
        traceparent=_optional(attributes.get(n.EXT_TRACEPARENT)),
    )


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

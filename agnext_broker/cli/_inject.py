"""``agnext-broker send`` and ``publish``: put one message on the broker from the command line.

The message is JSON under a wire name. With ``--app``, the app's module is imported and the
JSON is checked against the message class of that name before anything is sent (a message that
does not fit is refused here, naming the field); without it, the JSON goes as it is and the
receiving worker decodes it (a payload that does not fit is answered with an error, or
dead-lettered if it is an event).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click
from pydantic import BaseModel, TypeAdapter, ValidationError

from ..application.broker import BrokerAgentRuntime, BrokerSettings
from ..base import (
    AgentId,
    AgnextError,
    MessageSerializer,
    TopicId,
    UndeliverableException,
    UnknownPayload,
)
from ..base._serialization import catalogued_class, one_line_error
from ._errors import CommandError, run_async
from ._options import CONNECTION, load_settings, settings_options
from ._worker import load_app

JSON_CONTENT_TYPE = "application/json"


@dataclasses.dataclass(frozen=True)
class RawJson:
    """A message given as JSON text under a wire name."""

    type_name: str
    text: str


class RawJsonSerializer(MessageSerializer[RawJson]):
    def __init__(self, type_name: str) -> None:
        self.message_class = RawJson
        self._type_name = type_name

    @property
    def data_content_type(self) -> str:
        return JSON_CONTENT_TYPE

    @property
    def type_name(self) -> str:
        return self._type_name

    def deserialize(self, payload: bytes) -> RawJson:
        return RawJson(self._type_name, payload.decode())

    def serialize(self, message: RawJson) -> bytes:
        return message.text.encode()


def _split(value: str, what: str, hint: str) -> tuple[str, str]:
    first, sep, second = value.partition("/")
    if not sep or not first or not second:
        raise click.BadParameter(f"{value!r}: expected {what}", param_hint=hint)
    return first, second


def _message(message_type: str, text: str, app_spec: str | None) -> Any:
    """The message to send: the app's class of that wire name, validated, or the raw JSON."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint="JSON") from None
    if app_spec is None:
        return RawJson(message_type, text)
    load_app(app_spec)  # importing it notes its message classes
    cls = catalogued_class(message_type)
    if cls is None:
        raise click.BadParameter(
            f"{app_spec} defines no message class with wire name {message_type!r} (or more "
            "than one); leave out --app to send the JSON as it is",
            param_hint="MESSAGE_TYPE",
        )
    try:
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls.model_validate_json(text)
        return TypeAdapter(cls).validate_json(text)
    except ValidationError as e:
        raise click.BadParameter(
            f"the JSON does not fit {message_type}: {one_line_error(e)}", param_hint="JSON"
        ) from None


def _as_json(result: Any) -> str:
    if result is None:
        return "null"
    if isinstance(result, UnknownPayload):
        return result.payload.decode(errors="replace")
    if isinstance(result, RawJson):
        return result.text
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return json.dumps(dataclasses.asdict(result), default=str)
    return json.dumps(result, default=str)


async def _client(settings: BrokerSettings, message: Any) -> BrokerAgentRuntime:
    runtime = BrokerAgentRuntime(settings)
    if isinstance(message, RawJson):
        runtime.add_message_serializer(RawJsonSerializer(message.type_name))
    await runtime.start()
    return runtime


async def send(settings: BrokerSettings, recipient: AgentId, message: Any) -> int:
    runtime = await _client(settings, message)
    try:
        result = await runtime.send_message(message, recipient)
    except (AgnextError, UndeliverableException) as e:
        raise CommandError(str(e)) from None
    except Exception as e:  # the handler's error, rebuilt here
        raise CommandError(f"{recipient} answered with {type(e).__name__}: {e}") from None
    finally:
        await runtime.stop()
        await runtime.close()
    click.echo(_as_json(result))
    return 0


async def publish(settings: BrokerSettings, topic: TopicId, message: Any) -> int:
    runtime = await _client(settings, message)
    try:
        await runtime.publish_message(message, topic)
    finally:
        await runtime.stop()
        await runtime.close()
    click.echo(f"published to {topic}")
    return 0


_APP_OPTION = click.option(
    "--app",
    "app_spec",
    help="module:function of the app: check the JSON against its message class first",
)


@click.command("send")
@click.argument("recipient", metavar="TYPE/KEY")
@click.argument("message_type", metavar="MESSAGE_TYPE")
@click.argument("text", metavar="JSON")
@_APP_OPTION
@settings_options(CONNECTION)
def send_command(
    recipient: str, message_type: str, text: str, app_spec: str | None, **flags: Any
) -> None:
    """Send a message to the agent TYPE/KEY and print its answer as JSON.

    MESSAGE_TYPE is the message's wire name (its class name unless @wire_name says otherwise).
    """
    agent_type, key = _split(recipient, "TYPE/KEY, e.g. counter/alpha", "TYPE/KEY")
    message = _message(message_type, text, app_spec)
    settings = load_settings(flags)
    raise SystemExit(run_async(send(settings, AgentId(agent_type, key), message)))


@click.command("publish")
@click.argument("topic", metavar="TOPIC_TYPE/SOURCE")
@click.argument("message_type", metavar="MESSAGE_TYPE")
@click.argument("text", metavar="JSON")
@_APP_OPTION
@settings_options(CONNECTION)
def publish_command(
    topic: str, message_type: str, text: str, app_spec: str | None, **flags: Any
) -> None:
    """Publish an event to the topic TOPIC_TYPE/SOURCE (once RabbitMQ confirmed it, it is
    delivered to every subscribed agent)."""
    topic_type, source = _split(topic, "TOPIC_TYPE/SOURCE, e.g. work/alpha", "TOPIC_TYPE/SOURCE")
    message = _message(message_type, text, app_spec)
    settings = load_settings(flags)
    raise SystemExit(run_async(publish(settings, TopicId(topic_type, source), message)))

"""Message types on the wire: wire names, collisions, and types that cannot be serialized."""

from __future__ import annotations

import pytest

from agnext_broker import (
    JSON_DATA_CONTENT_TYPE,
    AgentId,
    AgentRuntime,
    SerializationError,
    UndeliverableException,
    WireNameCollisionError,
    try_get_known_serializers_for_type,
)

from .agents import (
    Add,
    Echo,
    EchoReply,
    FirstSharedAgent,
    PlainHandlerAgent,
    PlainMessage,
    Renamed,
    RenamedAgent,
    SecondSharedAgent,
    register_agent,
)


def test_a_message_travels_under_its_class_name_by_default() -> None:
    [serializer] = try_get_known_serializers_for_type(Echo)

    assert serializer.type_name == "Echo"
    assert serializer.data_content_type == JSON_DATA_CONTENT_TYPE


def test_wire_name_overrides_the_class_name() -> None:
    [serializer] = try_get_known_serializers_for_type(Renamed)

    assert serializer.type_name == "conformance.Renamed"
    assert serializer.deserialize(serializer.serialize(Renamed("x"))) == Renamed("x")


@pytest.mark.parametrize(
    "message",
    [Echo("dataclass"), Add(amount=3), EchoReply("t", "a/b", None, True, "x/y")],
    ids=["dataclass", "pydantic", "optional-fields"],
)
def test_known_messages_round_trip_as_json(message: object) -> None:
    [serializer] = try_get_known_serializers_for_type(type(message))

    assert serializer.deserialize(serializer.serialize(message)) == message


def test_a_plain_class_has_no_known_serializer() -> None:
    assert try_get_known_serializers_for_type(PlainMessage) == []


async def test_a_renamed_message_is_delivered(runtime: AgentRuntime) -> None:
    await register_agent(runtime, RenamedAgent, "renamed")

    assert await runtime.send_message(Renamed("hi"), AgentId("renamed", "k")) == Renamed("HI")


async def test_two_classes_with_one_wire_name_collide_at_registration(
    runtime: AgentRuntime,
) -> None:
    await register_agent(runtime, FirstSharedAgent, "first")

    with pytest.raises(WireNameCollisionError, match=r"conformance\.Shared") as raised:
        await register_agent(runtime, SecondSharedAgent, "second")

    assert isinstance(raised.value, SerializationError)
    assert isinstance(raised.value, ValueError)
    # The refused type registered nothing.
    with pytest.raises(UndeliverableException):
        await runtime.send_message(Echo("x"), AgentId("second", "k"))


async def test_one_class_handled_by_two_agent_types_is_no_collision(runtime: AgentRuntime) -> None:
    await register_agent(runtime, FirstSharedAgent, "first")
    await register_agent(runtime, FirstSharedAgent, "first_again")


async def test_a_handler_of_a_plain_class_is_refused_at_register(runtime: AgentRuntime) -> None:
    with pytest.raises(SerializationError, match="PlainMessage"):
        await register_agent(runtime, PlainHandlerAgent, "plain")

    with pytest.raises(UndeliverableException):
        await runtime.send_message(Echo("x"), AgentId("plain", "k"))

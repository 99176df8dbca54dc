from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from agnext_broker import (
    JSON_DATA_CONTENT_TYPE,
    SerializationError,
    UnknownPayload,
    WireNameCollisionError,
    try_get_known_serializers_for_type,
    wire_name,
)
from agnext_broker.base import SerializationRegistry


@dataclass
class Inner:
    x: int


@dataclass
class Outer:
    inner: Inner
    tags: list[str]
    maybe: int | str


class Model(BaseModel):
    name: str
    inner: Inner | None = None


@wire_name("orders.Placed")
class Placed(BaseModel):
    order_id: str


def test_dataclass_round_trip_with_nesting_and_union() -> None:
    registry = SerializationRegistry()
    message = Outer(Inner(1), ["a"], "s")
    type_name, content_type, payload = registry.serialize(message)
    assert (type_name, content_type) == ("Outer", JSON_DATA_CONTENT_TYPE)
    decoded = registry.deserialize(payload, type_name="Outer", data_content_type=content_type)
    assert decoded == message


def test_pydantic_round_trip_is_readable_json() -> None:
    registry = SerializationRegistry()
    _, _, payload = registry.serialize(Model(name="n", inner=Inner(2)))
    assert payload == b'{"name":"n","inner":{"x":2}}'
    assert registry.deserialize(
        payload, type_name="Model", data_content_type=JSON_DATA_CONTENT_TYPE
    ) == Model(name="n", inner=Inner(2))


def test_wire_name_overrides_class_name_and_is_not_inherited() -> None:
    (serializer,) = try_get_known_serializers_for_type(Placed)
    assert serializer.type_name == "orders.Placed"

    class Child(Placed):
        pass

    (child,) = try_get_known_serializers_for_type(Child)
    assert child.type_name == "Child"


def test_two_classes_with_one_wire_name_is_an_error_naming_both() -> None:
    registry = SerializationRegistry()
    registry.add_type(Placed)
    registry.add_type(Placed)  # the same class again is fine

    @wire_name("orders.Placed")
    class Impostor(BaseModel):
        order_id: str

    with pytest.raises(WireNameCollisionError, match="Impostor") as info:
        registry.add_type(Impostor)
    assert "Placed" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unserializable_type_is_named() -> None:
    class Plain:
        pass

    with pytest.raises(SerializationError, match="Plain"):
        SerializationRegistry().serialize(Plain())


def test_unknown_wire_name_gives_unknown_payload() -> None:
    decoded = SerializationRegistry().deserialize(
        b"{}", type_name="Nope", data_content_type="application/json"
    )
    assert decoded == UnknownPayload("Nope", "application/json", b"{}")


def test_bad_payload_is_a_serialization_error() -> None:
    registry = SerializationRegistry()
    registry.add_type(Inner)
    with pytest.raises(SerializationError, match="Inner"):
        registry.deserialize(
            b'{"x": "not a number"}', type_name="Inner", data_content_type=JSON_DATA_CONTENT_TYPE
        )


@pytest.mark.parametrize("bad", ["", "tab\tname", "x" * 256])
def test_wire_name_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ValueError, match="Invalid wire name"):
        wire_name(bad)

"""How messages become bytes: one serializer per message class, found by its wire name.

A message class's wire name is its class name (as in autogen-core) unless :func:`wire_name` gives
another. Two different classes that claim one wire name are refused when the second is
registered, so a collision is an error at start-up and never a wrong delivery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

from ._exceptions import SerializationError, WireNameCollisionError

T = TypeVar("T")
C = TypeVar("C", bound=type[Any])

JSON_DATA_CONTENT_TYPE = "application/json"
"""The content type of JSON payloads (pydantic models and dataclasses)."""

_WIRE_NAME_ATTR = "__agnext_wire_name__"


@runtime_checkable
class MessageSerializer(Protocol[T]):
    """Turns messages of one class into bytes under a wire name, and back."""

    @property
    def data_content_type(self) -> str: ...

    @property
    def type_name(self) -> str: ...

    def deserialize(self, payload: bytes) -> T: ...

    def serialize(self, message: T) -> bytes: ...


def wire_name(name: str) -> Callable[[C], C]:
    """Class decorator: publish this message class under ``name`` instead of its class name.

    Example::

        @wire_name("orders.OrderPlaced")
        class OrderPlaced(BaseModel):
            order_id: str
    """
    if not name or not name.isprintable() or len(name) > 255:
        raise ValueError(f"Invalid wire name {name!r}: use 1-255 printable characters.")

    def decorate(cls: C) -> C:
        setattr(cls, _WIRE_NAME_ATTR, name)
        return cls

    return decorate


def wire_name_of(cls: type[Any]) -> str:
    """The wire name of a message class: set by :func:`wire_name`, else the class name."""
    name = cls.__dict__.get(_WIRE_NAME_ATTR)
    return name if isinstance(name, str) else cls.__name__


class PydanticJsonMessageSerializer(MessageSerializer[Any]):
    """JSON through pydantic's ``model_dump_json`` / ``model_validate_json``."""

    def __init__(self, cls: type[BaseModel], type_name: str | None = None) -> None:
        self.message_class = cls
        self._type_name = type_name or wire_name_of(cls)

    @property
    def data_content_type(self) -> str:
        return JSON_DATA_CONTENT_TYPE

    @property
    def type_name(self) -> str:
        return self._type_name

    def deserialize(self, payload: bytes) -> Any:
        return self.message_class.model_validate_json(payload)

    def serialize(self, message: Any) -> bytes:
        return message.model_dump_json().encode()  # type: ignore[no-any-return]


class DataclassJsonMessageSerializer(MessageSerializer[Any]):
    """JSON for dataclasses, nested dataclasses and unions included, through a pydantic
    ``TypeAdapter`` (autogen-core refuses nested dataclasses; this does not need to)."""

    def __init__(self, cls: type[Any], type_name: str | None = None) -> None:
        if not dataclasses.is_dataclass(cls):
            raise SerializationError(f"{cls.__qualname__} is not a dataclass.")
        try:
            self._adapter: TypeAdapter[Any] = TypeAdapter(cls)
        except (PydanticSchemaGenerationError, PydanticUserError) as e:
            raise SerializationError(
                f"Dataclass {cls.__qualname__} cannot be serialized to JSON: {e}"
            ) from e
        self.message_class = cls
        self._type_name = type_name or wire_name_of(cls)

    @property
    def data_content_type(self) -> str:
        return JSON_DATA_CONTENT_TYPE

    @property
    def type_name(self) -> str:
        return self._type_name

    def deserialize(self, payload: bytes) -> Any:
        return self._adapter.validate_json(payload)

    def serialize(self, message: Any) -> bytes:
        return self._adapter.dump_json(message)


_CATALOG: dict[str, set[type[Any]]] = {}


def remember_message_class(cls: type[Any]) -> None:
    """Note a message class in the process-wide catalog (handlers' declared types are noted
    when their class is defined), so a runtime can decode a wire name it was never told about,
    such as an RPC response type, when exactly one loaded class has that name."""
    if isinstance(cls, type) and (issubclass(cls, BaseModel) or dataclasses.is_dataclass(cls)):
        _CATALOG.setdefault(wire_name_of(cls), set()).add(cls)


def catalogued_class(name: str) -> type[Any] | None:
    """The one class noted under wire name ``name``, or ``None`` (none, or ambiguous)."""
    classes = _CATALOG.get(name)
    return next(iter(classes)) if classes is not None and len(classes) == 1 else None


def try_get_known_serializers_for_type(cls: type[Any]) -> list[MessageSerializer[Any]]:
    """The serializers agnext-broker knows for ``cls`` (empty when it knows none)."""
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        serializer: MessageSerializer[Any] = PydanticJsonMessageSerializer(cls)
    elif isinstance(cls, type) and dataclasses.is_dataclass(cls):
        serializer = DataclassJsonMessageSerializer(cls)
    else:
        return []
    remember_message_class(cls)
    return [serializer]


@dataclasses.dataclass
class UnknownPayload:
    """A payload whose wire name no registered serializer knows; handlers receive it as is."""

    type_name: str
    data_content_type: str
    payload: bytes


def one_line_error(error: Exception) -> str:
    """What is wrong with a payload, on one line (pydantic's report takes several)."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in problem['loc']) or '(message)'}: {problem['msg']}"
            for problem in error.errors()
        )
    return " ".join(str(error).split())


class SerializationRegistry:
    """The serializers known to one runtime, by wire name and by message class."""

    def __init__(self) -> None:
        self._by_name: dict[tuple[str, str], MessageSerializer[Any]] = {}
        self._by_class: dict[type[Any], MessageSerializer[Any]] = {}
        self._content_types = {JSON_DATA_CONTENT_TYPE}  # every known message class has JSON

    def add_serializer(
        self, serializer: MessageSerializer[Any] | Sequence[MessageSerializer[Any]]
    ) -> None:
        """Register serializers.

        Raises:
            WireNameCollisionError: another class already uses this wire name.
        """
        if isinstance(serializer, Sequence):
            for one in serializer:
                self.add_serializer(one)
            return
        key = (serializer.type_name, serializer.data_content_type)
        message_class: type[Any] | None = getattr(serializer, "message_class", None)
        existing = self._by_name.get(key)
        if existing is not None:
            existing_class = getattr(existing, "message_class", None)
            if existing_class is not message_class or type(existing) is not type(serializer):
                raise WireNameCollisionError(
                    f"Wire name {serializer.type_name!r} is claimed by two classes: "
                    f"{_describe(existing_class, existing)} and "
                    f"{_describe(message_class, serializer)}. Rename one or give it another "
                    f"name with @wire_name(...)."
                )
            return
        self._by_name[key] = serializer
        self._content_types.add(serializer.data_content_type)
        if message_class is not None:
            self._by_class.setdefault(message_class, serializer)

    def add_type(self, cls: type[Any], *, needed_by: str = "") -> None:
        """Register the known serializer of ``cls``.

        Raises:
            SerializationError: agnext-broker knows no serializer for ``cls``.
        """
        if cls in self._by_class:
            return
        serializers = try_get_known_serializers_for_type(cls)
        if not serializers:
            where = f" (used by {needed_by})" if needed_by else ""
            raise SerializationError(
                f"Message type {_qualname(cls)}{where} cannot be serialized: make it a pydantic "
                "model or a dataclass, or register a MessageSerializer for it with "
                "runtime.add_message_serializer()."
            )
        self.add_serializer(serializers)

    def decodes_content_type(self, data_content_type: str) -> bool:
        """Whether some serializer here decodes payloads of ``data_content_type`` (JSON, or the
        content type of a serializer added to the registry). No serializer unpickles."""
        return data_content_type in self._content_types

    def is_registered(self, type_name: str, data_content_type: str) -> bool:
        return (type_name, data_content_type) in self._by_name

    def serializer_for(self, message: Any) -> MessageSerializer[Any]:
        """The serializer for ``message``'s class, registering a known one on first use.

        Raises:
            SerializationError: no serializer can be found for the message's class.
        """
        serializer = self._by_class.get(type(message))
        if serializer is None:
            self.add_type(type(message))
            serializer = self._by_class[type(message)]
        return serializer

    def serialize(self, message: Any) -> tuple[str, str, bytes]:
        """``(wire name, content type, payload)`` of a message."""
        serializer = self.serializer_for(message)
        return serializer.type_name, serializer.data_content_type, serializer.serialize(message)

    def deserialize(self, payload: bytes, *, type_name: str, data_content_type: str) -> Any:
        """Decode a payload; an unknown wire name gives an :class:`UnknownPayload`.

        Raises:
            SerializationError: the payload does not decode as its registered class.
        """
        serializer = self._by_name.get((type_name, data_content_type))
        if serializer is None:
            serializer = self._from_catalog(type_name, data_content_type)
            if serializer is None:
                return UnknownPayload(type_name, data_content_type, payload)
        try:
            return serializer.deserialize(payload)
        except Exception as e:
            raise SerializationError(
                f"Payload of type {type_name!r} does not decode: {one_line_error(e)}"
            ) from e

    def _from_catalog(
        self, type_name: str, data_content_type: str
    ) -> MessageSerializer[Any] | None:
        cls = catalogued_class(type_name)
        if cls is None:
            return None
        for serializer in try_get_known_serializers_for_type(cls):
            if serializer.data_content_type == data_content_type:
                self.add_serializer(serializer)
                return serializer
        return None


def _qualname(cls: Any) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"


def _describe(cls: type[Any] | None, serializer: object) -> str:
    return _qualname(cls) if cls is not None else f"serializer {serializer!r}"

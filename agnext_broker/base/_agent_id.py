from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

_AGENT_TYPE_PATTERN = re.compile(r"^[\w\-\.]+\Z")


def is_valid_agent_type(value: str) -> bool:
    return bool(_AGENT_TYPE_PATTERN.match(value))


@dataclass(eq=True, frozen=True)
class AgentType:
    """The name under which a factory is registered (not the Python class name)."""

    type: str


class AgentId:
    """The address of one agent instance: its type and a key within that type.

    ``str(agent_id)`` is ``"type/key"`` and :meth:`from_str` reads it back.
    """

    __slots__ = ("_hash", "_key", "_type")

    def __init__(self, type: str | AgentType, key: str) -> None:
        if isinstance(type, AgentType):
            type = type.type
        if not is_valid_agent_type(type):
            raise ValueError(
                f"Invalid agent type: {type!r}. Agent types must match the regex ^[\\w\\-\\.]+\\Z "
                "(letters, digits, '_', '-', '.')."
            )
        self._type = type
        self._key = key
        self._hash = hash((type, key))

    @classmethod
    def from_str(cls, agent_id: str) -> Self:
        """Read an id written as ``"type/key"``."""
        agent_type, sep, key = agent_id.partition("/")
        if not sep:
            raise ValueError(f"Invalid agent id: {agent_id!r}; expected 'type/key'.")
        return cls(agent_type, key)

    @property
    def type(self) -> str:
        return self._type

    @property
    def key(self) -> str:
        return self._key

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentId):
            return False
        return self._type == other._type and self._key == other._key

    def __str__(self) -> str:
        return f"{self._type}/{self._key}"

    def __repr__(self) -> str:
        return f'AgentId(type="{self._type}", key="{self._key}")'

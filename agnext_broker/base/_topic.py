from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

from ._contexts import MessageHandlerContext

_TOPIC_TYPE_PATTERN = re.compile(r"^[\w\-\.\:\=]+\Z")


def is_valid_topic_type(value: str) -> bool:
    return bool(_TOPIC_TYPE_PATTERN.match(value))


@dataclass(eq=False, frozen=True)
class TopicId:
    """The scope of a published event: a topic ``type`` and the ``source`` it concerns.

    Subscriptions match on ``type``; the ``source`` becomes the key of the receiving agent.
    """

    type: str
    source: str

    def __post_init__(self) -> None:
        if not is_valid_topic_type(self.type):
            raise ValueError(
                f"Invalid topic type: {self.type!r}. Topic types must match ^[\\w\\-\\.\\:\\=]+\\Z."
            )

    def __str__(self) -> str:
        return f"{self.type}/{self.source}"

    # By value across subclasses: DefaultTopicId("t", "s") == TopicId("t", "s"), as a topic read
    # back from the wire is a plain TopicId.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopicId):
            return NotImplemented
        return self.type == other.type and self.source == other.source

    def __hash__(self) -> int:
        return hash((self.type, self.source))

    @classmethod
    def from_str(cls, topic_id: str) -> Self:
        """Read a topic written as ``"type/source"``."""
        topic_type, sep, source = topic_id.partition("/")
        if not sep:
            raise ValueError(f"Invalid topic id: {topic_id!r}; expected 'type/source'.")
        return cls(topic_type, source)


class DefaultTopicId(TopicId):
    """``TopicId("default", <source>)``; inside a handler the source defaults to the handling
    agent's key, elsewhere to ``"default"``."""

    def __init__(self, type: str = "default", source: str | None = None) -> None:
        if source is None:
            current = MessageHandlerContext.current_agent_id()
            source = current.key if current is not None else "default"
        super().__init__(type, source)

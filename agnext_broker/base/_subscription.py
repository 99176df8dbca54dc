"""Subscriptions map topics to agent types; the topic's source becomes the agent's key."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from ._agent_id import AgentId, AgentType
from ._contexts import SubscriptionInstantiationContext
from ._exceptions import CantHandleException
from ._topic import TopicId


@runtime_checkable
class Subscription(Protocol):
    """Which topics an agent type receives, and which agent of that type gets each topic."""

    @property
    def id(self) -> str:
        """A unique id (usually a UUID); :meth:`AgentRuntime.remove_subscription` takes it."""
        ...

    def __eq__(self, other: object) -> bool: ...

    def is_match(self, topic_id: TopicId) -> bool:
        """Whether this subscription receives events published to ``topic_id``."""
        ...

    def map_to_agent(self, topic_id: TopicId) -> AgentId:
        """The agent that receives ``topic_id``; only called when :meth:`is_match` is true.

        Raises:
            CantHandleException: the topic does not match.
        """
        ...


UnboundSubscription = Callable[[], "list[Subscription] | Awaitable[list[Subscription]]"]
"""A callback, run at registration, that returns the subscriptions of the type being registered."""


def _agent_type_name(agent_type: str | AgentType) -> str:
    return agent_type.type if isinstance(agent_type, AgentType) else agent_type


class TypeSubscription:
    """Topics whose type equals ``topic_type`` go to ``AgentId(agent_type, topic.source)``."""

    def __init__(self, topic_type: str, agent_type: str | AgentType, id: str | None = None) -> None:
        self._topic_type = topic_type
        self._agent_type = _agent_type_name(agent_type)
        self._id = id or str(uuid.uuid4())

    @property
    def id(self) -> str:
        return self._id

    @property
    def topic_type(self) -> str:
        return self._topic_type

    @property
    def agent_type(self) -> str:
        return self._agent_type

    def is_match(self, topic_id: TopicId) -> bool:
        return topic_id.type == self._topic_type

    def map_to_agent(self, topic_id: TopicId) -> AgentId:
        if not self.is_match(topic_id):
            raise CantHandleException(f"Topic {topic_id} does not match {self!r}.")
        return AgentId(self._agent_type, topic_id.source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TypeSubscription):
            return False
        return self._id == other._id or (
            self._agent_type == other._agent_type and self._topic_type == other._topic_type
        )

    def __hash__(self) -> int:
        return hash((self._agent_type, self._topic_type))

    def __repr__(self) -> str:
        return (
            f"TypeSubscription(topic_type={self._topic_type!r}, agent_type={self._agent_type!r}, "
            f"id={self._id!r})"
        )


class TypePrefixSubscription:
    """Topics whose type starts with ``topic_type_prefix`` go to ``AgentId(agent_type, source)``."""

    def __init__(
        self, topic_type_prefix: str, agent_type: str | AgentType, id: str | None = None
    ) -> None:
        self._topic_type_prefix = topic_type_prefix
        self._agent_type = _agent_type_name(agent_type)
        self._id = id or str(uuid.uuid4())

    @property
    def id(self) -> str:
        return self._id

    @property
    def topic_type_prefix(self) -> str:
        return self._topic_type_prefix

    @property
    def agent_type(self) -> str:
        return self._agent_type

    def is_match(self, topic_id: TopicId) -> bool:
        return topic_id.type.startswith(self._topic_type_prefix)

    def map_to_agent(self, topic_id: TopicId) -> AgentId:
        if not self.is_match(topic_id):
            raise CantHandleException(f"Topic {topic_id} does not match {self!r}.")
        return AgentId(self._agent_type, topic_id.source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TypePrefixSubscription):
            return False
        return self._id == other._id or (
            self._agent_type == other._agent_type
            and self._topic_type_prefix == other._topic_type_prefix
        )

    def __hash__(self) -> int:
        return hash((self._agent_type, self._topic_type_prefix))

    def __repr__(self) -> str:
        return (
            f"TypePrefixSubscription(topic_type_prefix={self._topic_type_prefix!r}, "
            f"agent_type={self._agent_type!r}, id={self._id!r})"
        )


class DefaultSubscription(TypeSubscription):
    """A :class:`TypeSubscription` to topic type ``"default"`` for the type being registered."""

    def __init__(self, topic_type: str = "default", agent_type: str | AgentType | None = None):
        if agent_type is None:
            try:
                agent_type = SubscriptionInstantiationContext.agent_type()
            except RuntimeError as e:
                raise CantHandleException(
                    "DefaultSubscription() without agent_type must be created while an agent "
                    "type is registered (in a @default_subscription or register() callback); "
                    "pass agent_type= otherwise."
                ) from e
        super().__init__(topic_type, agent_type)

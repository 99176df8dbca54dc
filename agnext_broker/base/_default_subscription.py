from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, overload

from ._base_agent import BaseAgent, subscription_factory
from ._subscription import DefaultSubscription

BaseAgentT = TypeVar("BaseAgentT", bound=BaseAgent)


@overload
def default_subscription() -> Callable[[type[BaseAgentT]], type[BaseAgentT]]: ...


@overload
def default_subscription(cls: type[BaseAgentT]) -> type[BaseAgentT]: ...


def default_subscription(
    cls: type[BaseAgentT] | None = None,
) -> Callable[[type[BaseAgentT]], type[BaseAgentT]] | type[BaseAgentT]:
    """Class decorator: subscribe the registered type to topic type ``"default"``."""
    decorator: Callable[[type[BaseAgentT]], type[BaseAgentT]] = subscription_factory(
        lambda: [DefaultSubscription()]
    )
    return decorator if cls is None else decorator(cls)


def type_subscription(topic_type: str) -> Callable[[type[BaseAgentT]], type[BaseAgentT]]:
    """Class decorator: subscribe the registered type to ``topic_type``."""
    return subscription_factory(lambda: [DefaultSubscription(topic_type=topic_type)])

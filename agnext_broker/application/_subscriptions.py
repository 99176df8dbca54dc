"""The subscriptions of a runtime and the recipients they give each topic."""

from __future__ import annotations

from collections.abc import Sequence

from ..base import AgentId, Subscription, TopicId


class SubscriptionTable:
    """Subscriptions in the order added; recipients per topic are cached until a change."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._recipients: dict[TopicId, tuple[AgentId, ...]] = {}

    @property
    def subscriptions(self) -> Sequence[Subscription]:
        return tuple(self._subscriptions)

    def add(self, subscription: Subscription) -> None:
        """Raises ValueError if an equal subscription exists."""
        if any(existing == subscription for existing in self._subscriptions):
            raise ValueError(f"Subscription already exists: {subscription!r}")
        self._subscriptions.append(subscription)
        self._recipients.clear()

    def remove(self, subscription_id: str) -> Subscription:
        """Remove by id and return it; raises ValueError if no subscription has this id."""
        for index, existing in enumerate(self._subscriptions):
            if existing.id == subscription_id:
                del self._subscriptions[index]
                self._recipients.clear()
                return existing
        raise ValueError(f"No subscription has id {subscription_id!r}.")

    def recipients(self, topic_id: TopicId) -> tuple[AgentId, ...]:
        """Every agent the topic reaches, once per matching subscription, in subscription order."""
        found = self._recipients.get(topic_id)
        if found is None:
            found = tuple(
                subscription.map_to_agent(topic_id)
                for subscription in self._subscriptions
                if subscription.is_match(topic_id)
            )
            if len(self._recipients) > 10_000:
                self._recipients.clear()  # topics are unbounded (source is free text)
            self._recipients[topic_id] = found
        return found

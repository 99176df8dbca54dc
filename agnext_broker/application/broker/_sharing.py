"""What the processes of a namespace share through the registry: the agent types (partition
count, the message types their handlers take, their queues and bindings) and the
subscriptions, with the version every heartbeat brings back.

A subscription added or removed by any process bumps the version; every runtime sees it in its
next heartbeat and reads the subscriptions again, so each worker knows every subscription
within one heartbeat (and also reads them again when an event finds no recipient).
"""

from __future__ import annotations

import logging

from ...base import AgentId, ServiceUnavailableError, Subscription, UndeliverableException
from ._redis import RegistryView
from ._session import Session

logger = logging.getLogger("agnext_broker")


class Sharing:
    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self.session: Session | None = None  # the session being started or running
        self.subscriptions: list[Subscription] = []
        self._version = -1
        self._partitions: dict[str, int] = {}  # any agent type -> partition count (cache)

    def _session(self) -> Session:
        if self.session is None:
            raise RuntimeError("The runtime is not started.")
        return self.session

    # -- agent types ----------------------------------------------------------------------------

    async def host_type(self, agent_type: str, partitions: int, message_types: list[str]) -> None:
        """Record the type, declare its queues and bind its subscriptions; then hand it to the
        worker, which takes its share of the partitions."""
        session = self._session()
        partitions = await session.registry.register_type(agent_type, partitions, message_types)
        self._partitions[agent_type] = partitions
        topology = session.transport.topology
        await topology.declare_type(agent_type, partitions)
        _, shared = await session.registry.subscriptions()
        for subscription in shared:
            if getattr(subscription, "agent_type", None) == agent_type:
                await topology.bind(subscription, agent_type, partitions)
        # Only now may a rebalance (perhaps running concurrently) consume its queues.
        session.hosting.hosted[agent_type] = partitions

    async def partitions_of(self, agent_type: str) -> int | None:
        partitions = self._partitions.get(agent_type)
        if partitions is None:
            partitions = await self._session().registry.partitions_of(agent_type)
            if partitions is not None:
                self._partitions[agent_type] = partitions
        return partitions

    async def check_hosted(self, recipient: AgentId) -> None:
        """Fail at once for a type no live worker hosts. When the registry cannot be read, or
        has just become readable again (every heartbeat may have expired meanwhile), the
        message goes anyway: its response comes within the caller's bound, or the bound ends
        the wait.

        Raises:
            UndeliverableException: no live worker hosts ``recipient.type``.
        """
        liveness = self._session().liveness
        view = liveness.view
        if view is not None and recipient.type in view.hosted_types:
            return
        try:
            view = await liveness.fresh_view()
        except ServiceUnavailableError as e:
            logger.debug("cannot read the registry (%s); sending to %s anyway", e, recipient)
            return
        if recipient.type in view.hosted_types or not liveness.trusts_absence():
            return
        raise UndeliverableException(
            f"No live worker hosts agent type {recipient.type!r} in namespace "
            f"{self._namespace!r}; cannot send to {recipient}."
        )

    # -- subscriptions --------------------------------------------------------------------------

    async def share(self, subscription: Subscription) -> None:
        """Add ``subscription`` to the registry and bind the type's queues to it."""
        session = self._session()
        await session.registry.add_subscription(subscription)
        agent_type = getattr(subscription, "agent_type", "")
        partitions = await self.partitions_of(agent_type)
        if partitions is not None:  # else the first worker hosting the type binds it
            await session.transport.topology.bind(subscription, agent_type, partitions)

    async def unshare(self, subscription: Subscription) -> None:
        session = self._session()
        await session.registry.remove_subscription(subscription)
        agent_type = getattr(subscription, "agent_type", "")
        partitions = await self.partitions_of(agent_type)
        if partitions is not None:
            await session.transport.topology.unbind(subscription, agent_type, partitions)

    def find(self, subscription_id: str) -> Subscription | None:
        return next((s for s in self.subscriptions if s.id == subscription_id), None)

    async def reload(self) -> None:
        """Read every subscription of the namespace again."""
        if self.session is None:
            return
        version, subscriptions = await self.session.registry.subscriptions()
        self.subscriptions = subscriptions
        self._version = version

    def changed(self, view: RegistryView) -> bool:
        """Whether the subscriptions changed since they were last read."""
        return view.subscriptions_version != self._version

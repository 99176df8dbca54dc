"""The worker half of a broker runtime, put together: the partitions it owns (``_ownership``),
the agents it has active (``_activation``), how a delivery is handled (``_delivery``, ``_turn``)
and saved (``_commit``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from ...base import AgentId, SerializationRegistry, Subscription
from .._agents import AgentDirectory
from .._telemetry import Telemetry
from ._activation import Activations
from ._amqp import Transport
from ._commit import Commits
from ._delivery import Deliveries
from ._metrics import Metrics
from ._names import Names
from ._ownership import Ownership, Partition
from ._redis import PartitionClaims, Registry, RegistryView, StateStore
from ._settings import BrokerSettings
from ._tasks import CLOSE_BOUND
from ._turn import Turns


class Hosting:
    """Consumes the partitions this worker owns and handles their messages."""

    def __init__(
        self,
        *,
        settings: BrokerSettings,
        names: Names,
        registry: Registry,
        claims: PartitionClaims,
        store: StateStore,
        transport: Transport,
        directory: AgentDirectory,
        serializers: SerializationRegistry,
        telemetry: Telemetry,
        metrics: Metrics,
        subscriptions: Callable[[], list[Subscription]],
        reload_subscriptions: Callable[[], Awaitable[None]],
        on_event_failure: Callable[[BaseException], None],
    ) -> None:
        self._directory = directory
        self.activations = Activations(settings, directory, store, registry)
        self._commits = Commits(self.activations, store, directory, metrics)
        turns = Turns(
            settings=settings,
            serializers=serializers,
            telemetry=telemetry,
            activations=self.activations,
            commits=self._commits,
            store=store,
            metrics=metrics,
            on_event_failure=on_event_failure,
        )
        self._deliveries = Deliveries(
            settings=settings,
            names=names,
            transport=transport,
            directory=directory,
            serializers=serializers,
            turns=turns,
            metrics=metrics,
            partitions_of=lambda agent_type: self.ownership.hosted.get(agent_type, 1),
            subscriptions=subscriptions,
            reload_subscriptions=reload_subscriptions,
        )
        self.ownership = Ownership(
            settings=settings,
            names=names,
            claims=claims,
            transport=transport,
            handle=self._deliveries.handle,
            release_agents=self._release_agents,
        )

    @property
    def hosted(self) -> dict[str, int]:
        """Agent type -> partition count, of the types this worker hosts."""
        return self.ownership.hosted

    @property
    def in_flight(self) -> int:
        return self.ownership.in_flight

    def owns(self, agent_id: AgentId) -> bool:
        return self.ownership.owns(agent_id)

    def on_view(self, view: RegistryView) -> None:
        self.ownership.on_view(view)

    async def _release_agents(self, part: Partition, keep: bool) -> None:
        """Let go of the agents of a released partition: deactivate them, or (the runtime
        stops) keep their instances for ``try_get_underlying_agent_instance`` until close."""
        for agent_id in self._directory.active_ids():
            if agent_id.type != part.agent_type:
                continue
            if self.ownership.partition_of(agent_id) != part.index:
                continue
            if keep:
                self.activations.forget(agent_id)
            else:
                await self.activations.deactivate(agent_id)
            self._commits.forget(agent_id)

    async def drain(self, deadline: float) -> None:
        """Stop taking deliveries everywhere, let the running turns finish (until ``deadline``),
        give back what was not begun, and release every partition."""
        await self.ownership.drain(deadline)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_BOUND):
                await self.activations.flush_touched()

    async def sweep(self) -> None:
        await self.activations.sweep()

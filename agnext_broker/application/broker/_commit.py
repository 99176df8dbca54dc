"""Saving what a handled message did: the agent's state, with the message recorded as applied
(and its response, for a retry), in one version-checked write.

While Redis cannot be reached the write is tried again with backoff, holding the agent's turn:
the instance holds the handler's effect, and giving the message back would only run it again. A
write that landed although its answer was lost comes back as a version conflict, and the
redelivered message is then recognised as applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import Any

from ...base import AgentId, BaseAgent
from .._agents import AgentDirectory
from ._activation import Activations
from ._metrics import Metrics
from ._redis import StateConflict, StateStore, StoredResponse
from ._retrying import until_available

logger = logging.getLogger("agnext_broker")


class StateMoved(Exception):
    """Another worker wrote the agent's state meanwhile: the delivery goes back to its queue."""


def keeps_state(agent: Any) -> bool:
    """Whether the agent has a ``save_state()`` of its own."""
    return not (isinstance(agent, BaseAgent) and type(agent).save_state is BaseAgent.save_state)


class Commits:
    def __init__(
        self,
        activations: Activations,
        store: StateStore,
        directory: AgentDirectory,
        metrics: Metrics,
    ) -> None:
        self._activations = activations
        self._metrics = metrics
        self._store = store
        self._directory = directory
        self._locks: dict[AgentId, asyncio.Lock] = {}

    def forget(self, agent_id: AgentId) -> None:
        lock = self._locks.get(agent_id)
        if lock is not None and not lock.locked():
            del self._locks[agent_id]

    async def commit(self, agent_id: AgentId, key: str, response: StoredResponse | None) -> None:
        """Record ``key`` as applied by the agent (with ``response``), with its state if it
        keeps one.

        Raises:
            StateMoved: another worker wrote the agent's state meanwhile.
        """
        lock = self._locks.get(agent_id)
        if lock is None:
            lock = self._locks[agent_id] = asyncio.Lock()
        async with lock:  # turns of one agent that overlap (reentrant, concurrent) save in order
            agent = self._directory.get_active(agent_id)
            try:
                record = self._activations.records.get(agent_id)
                if record is None:
                    record = await self._activations.load(agent_id)
                stateful = agent is not None and keeps_state(agent)
                state = dict(await agent.save_state()) if stateful and agent is not None else None
                updated = record.applying(key, state, self._store.retention)
                write = partial(
                    self._store.commit,
                    agent_id,
                    record,
                    updated if stateful else None,
                    key,
                    response,
                )
                await until_available(write, f"saving the state of {agent_id} failed")
                self._metrics.state_writes.labels("saved").inc()
            except StateConflict as e:
                self._metrics.state_writes.labels("conflict").inc()
                logger.warning("%s; the message goes back to the queue", e)
                await self._activations.deactivate(agent_id)
                raise StateMoved() from e
            except BaseException:
                # The effect was not saved: the message goes back to the queue, and runs again
                # from the saved state, not on this instance.
                with contextlib.suppress(Exception):
                    await self._activations.deactivate(agent_id)
                raise
            if agent is not None:
                self._activations.records[agent_id] = updated

"""Which agents this worker has active, with the record each was loaded from.

An agent is activated inside its first turn: its record (state and the messages it applied
within the dedup window) is read from Redis and its state loaded into a new instance. While
Redis cannot be reached the activation waits for it, holding the turn, instead of giving the
message back to its queue: nothing is delivered again and no delivery count is burned, and the
broker sends this worker no more than ``prefetch`` deliveries meanwhile.

Agents idle for longer than ``idle_timeout`` are deactivated (closed and forgotten), so a worker
serves far more agents than fit in its memory.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from ...base import AgentId, ServiceUnavailableError
from .._agents import AgentDirectory
from ._redis import AgentRecord, Registry, StateStore
from ._retrying import until_available
from ._settings import BrokerSettings

logger = logging.getLogger("agnext_broker")


class ActivationFailed(Exception):
    """The agent's factory or its ``load_state`` raised."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Activations:
    def __init__(
        self,
        settings: BrokerSettings,
        directory: AgentDirectory,
        store: StateStore,
        registry: Registry,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._store = store
        self._registry = registry
        self.records: dict[AgentId, AgentRecord] = {}
        self._last_used: dict[AgentId, float] = {}
        self._touched: dict[str, set[str]] = {}

    async def activate(self, agent_id: AgentId) -> tuple[Any, AgentRecord]:
        """The active agent and its record, loading both if the agent is not active.

        Raises:
            ActivationFailed: the factory or ``load_state`` raised.
        """
        record = self.records.get(agent_id)
        agent = self._directory.get_active(agent_id)
        if agent is None or record is None:
            record = await self.load(agent_id)
            try:
                agent = await self._directory.activate(agent_id)
                if record.state is not None:
                    await agent.load_state(record.state)
            except Exception as e:
                self._directory.deactivate(agent_id)
                raise ActivationFailed(e) from e
            self.records[agent_id] = record
        self._last_used[agent_id] = time.monotonic()
        self._touched.setdefault(agent_id.type, set()).add(agent_id.key)
        return agent, record

    async def load(self, agent_id: AgentId) -> AgentRecord:
        """The agent's record from Redis, waiting for Redis while it cannot be reached."""
        load = partial(self._store.load, agent_id)
        return await until_available(load, f"loading the state of {agent_id} failed")

    async def deactivate(self, agent_id: AgentId) -> None:
        """Close the agent and forget it (its next message activates it again from Redis)."""
        agent = self._directory.deactivate(agent_id)
        self.records.pop(agent_id, None)
        self._last_used.pop(agent_id, None)
        if agent is not None:
            try:
                await agent.close()
            except Exception:
                logger.exception("closing agent %s failed", agent_id)
            try:
                await self._registry.forget_active(agent_id.type, [agent_id.key])
            except ServiceUnavailableError as e:
                logger.debug("could not record %s as inactive: %s", agent_id, e)

    def forget(self, agent_id: AgentId) -> None:
        """Stop tracking the agent but keep its instance (the runtime stopped: it stays
        reachable with ``try_get_underlying_agent_instance`` until ``close()``)."""
        self.records.pop(agent_id, None)
        self._last_used.pop(agent_id, None)

    async def sweep(self) -> None:
        """Deactivate agents idle for longer than ``idle_timeout``; report the active ones."""
        deadline = time.monotonic() - self._settings.idle_timeout
        for agent_id, last_used in list(self._last_used.items()):
            gate = self._directory.gate(agent_id)
            if last_used < deadline and (gate is None or not (gate.busy or gate.waiting)):
                await self.deactivate(agent_id)
        await self.flush_touched()

    async def flush_touched(self) -> None:
        touched, self._touched = self._touched, {}
        for agent_type, keys in touched.items():
            try:
                await self._registry.touch_active(agent_type, sorted(keys))
            except ServiceUnavailableError as e:
                logger.debug("could not record the active agents of %s: %s", agent_type, e)

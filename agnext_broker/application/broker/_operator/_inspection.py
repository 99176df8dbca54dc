"""What a namespace holds, read from the registry and agents' records in Redis and the partition
queues in RabbitMQ, for ``agnext-broker inspect``. Nothing is written.

Durations are measured on Redis' clock (``TIME``), like liveness: a heartbeat's expiry and an
applied message's time were set from it. An agent's last activity was recorded by its worker's
clock (unix seconds), and is compared with Redis' too.
"""

from __future__ import annotations

import json
from typing import Any, cast

from ....base import AgentId
from .._names import Names
from .._redis import redis_errors, subscription_to_json
from .._redis._text import text
from .._routing import partition_of
from ._connections import Connections
from ._errors import NotFoundError
from ._queues import QueueCounter
from ._views import (
    AgentStateView,
    AgentsView,
    AgentView,
    PartitionView,
    SubscriptionsView,
    SubscriptionView,
    TypeView,
    WorkerView,
)


def _agent_state_prefix(names: Names, agent_type: str) -> str:
    """``<ns>:agent:{<type>/``: every state key of the type starts with it (agent types hold no
    SCAN pattern characters)."""
    return names.state_key_pattern.removesuffix("*}") + f"{agent_type}/"


class Inspection:
    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._names = connections.names
        self._server = connections.redis_server

    async def _redis_now(self) -> float:
        """Redis' clock, unix seconds."""
        redis = await self._connections.redis()
        with redis_errors(self._server):
            seconds, microseconds = await redis.time()
        return int(seconds) + int(microseconds) / 1_000_000

    async def _scores(self, key: str) -> dict[str, float]:
        """A sorted set's members and scores."""
        redis = await self._connections.redis()
        with redis_errors(self._server):
            pairs = cast(list[tuple[str, float]], await redis.zrange(key, 0, -1, withscores=True))
        return {text(member): float(score) for member, score in pairs}

    async def _types(self) -> dict[str, dict[str, Any]]:
        return await (await self._connections.registry()).agent_types()

    async def _partitions_of(self, agent_type: str) -> int:
        """Raises: NotFoundError: the type is not registered in the namespace."""
        types = await self._types()
        if agent_type not in types:
            known = ", ".join(sorted(types)) or "none"
            raise NotFoundError(
                f"no agent type {agent_type!r} is registered in namespace "
                f"{self._names.namespace!r} (registered: {known})"
            )
        return int(types[agent_type]["partitions"])

    # -- workers and types ----------------------------------------------------------------------

    async def workers(self) -> list[WorkerView]:
        """The live workers, sorted by id."""
        view = await (await self._connections.registry()).live_workers()
        expiries = await self._scores(self._names.workers_key)
        return [
            WorkerView(
                worker_id=w.worker_id,
                host=w.host,
                pid=w.pid,
                started=w.started,
                expires_in_s=(expiries.get(w.worker_id, view.now_ms) - view.now_ms) / 1000,
                draining=w.draining,
                agent_types=w.agent_types,
            )
            for w in view.workers
        ]

    async def types(self) -> list[TypeView]:
        """The registered agent types, sorted by name."""
        registry = await self._connections.registry()
        types = await registry.agent_types()
        view = await registry.live_workers()
        _, subscriptions = await registry.subscriptions()
        redis = await self._connections.redis()
        names = sorted(types)
        with redis_errors(self._server):
            async with redis.pipeline(transaction=False) as pipe:
                for agent_type in names:
                    pipe.zcard(self._names.active_key(agent_type))
                active = await pipe.execute()
        return [
            TypeView(
                agent_type=agent_type,
                partitions=int(types[agent_type]["partitions"]),
                message_types=tuple(types[agent_type].get("message_types", ())),
                subscriptions=sum(
                    1 for s in subscriptions if getattr(s, "agent_type", None) == agent_type
                ),
                active_agents=int(count),
                hosts=tuple(w.worker_id for w in view.workers if agent_type in w.agent_types),
            )
            for agent_type, count in zip(names, active, strict=True)
        ]

    # -- partitions -----------------------------------------------------------------------------

    async def partitions(self, agent_type: str | None = None) -> list[PartitionView]:
        """Every partition of ``agent_type`` (default: of every type): its holder in Redis and
        its queue's counts in RabbitMQ.

        Raises:
            NotFoundError: ``agent_type`` is not registered.
        """
        types = await self._types()
        if agent_type is not None:
            types = {agent_type: {"partitions": await self._partitions_of(agent_type)}}
        live = (await (await self._connections.registry()).live_workers()).worker_ids
        claims = await self._connections.claims()
        counter = QueueCounter(self._connections)
        found: list[PartitionView] = []
        try:
            for name in sorted(types):
                partitions = int(types[name]["partitions"])
                holders = await claims.holders(name, partitions)
                for partition, owner in enumerate(holders):
                    queue = self._names.partition_queue(name, partition)
                    counts = await counter.counts(queue)
                    found.append(
                        PartitionView(
                            agent_type=name,
                            partition=partition,
                            queue=queue,
                            owner=owner,
                            owner_live=owner in live,
                            ready=None if counts is None else counts.messages,
                            consumers=None if counts is None else counts.consumers,
                        )
                    )
        finally:
            await counter.close()
        return found

    # -- subscriptions --------------------------------------------------------------------------

    async def subscriptions(self) -> SubscriptionsView:
        version, subscriptions = await (await self._connections.registry()).subscriptions()
        views = []
        for subscription in subscriptions:
            value = subscription_to_json(subscription)
            topic = value.get("topic_type", value.get("topic_type_prefix", "") + "*")
            views.append(SubscriptionView(value["id"], value["kind"], topic, value["agent_type"]))
        views.sort(key=lambda s: (s.agent_type, s.topic, s.id))
        return SubscriptionsView(version, tuple(views))

    # -- agents ---------------------------------------------------------------------------------

    async def agents(self, agent_type: str, limit: int | None = None) -> AgentsView:
        """The agents of ``agent_type`` that Redis knows: those with a saved state (a SCAN of
        the type's state keys) and those marked active; sorted by key, at most ``limit``.

        Raises:
            NotFoundError: ``agent_type`` is not registered.
        """
        partitions = await self._partitions_of(agent_type)
        redis = await self._connections.redis()
        prefix = _agent_state_prefix(self._names, agent_type)
        active = await self._scores(self._names.active_key(agent_type))
        with redis_errors(self._server):
            saved = {
                text(key)[len(prefix) : -1]
                async for key in redis.scan_iter(match=prefix + "*}", count=1000)
            }
        keys = sorted(saved | set(active))
        shown = keys if limit is None else keys[:limit]
        with redis_errors(self._server):
            async with redis.pipeline(transaction=False) as pipe:
                for key in shown:
                    pipe.get(prefix + key + "}")
                documents = await pipe.execute()
        holders = await (await self._connections.claims()).holders(agent_type, partitions)
        now = await self._redis_now()
        views = []
        for key, document in zip(shown, documents, strict=True):
            partition = partition_of(key, partitions)
            views.append(
                AgentView(
                    key=key,
                    partition=partition,
                    owner=holders[partition],
                    version=None if document is None else int(json.loads(document)["version"]),
                    last_active_s=None if key not in active else max(0.0, now - active[key]),
                )
            )
        return AgentsView(agent_type, len(keys), tuple(views))

    async def state(self, agent_type: str, key: str) -> AgentStateView:
        """One agent's record: its saved state with its version, and what it applied.

        Raises:
            NotFoundError: the type is not registered, or Redis has no record of the agent.
        """
        partition = partition_of(key, await self._partitions_of(agent_type))
        agent = AgentId(agent_type, key)
        names = self._names
        redis = await self._connections.redis()
        with redis_errors(self._server):
            # One pipeline, not a transaction: the agent's keys and the registry's lie in other
            # Redis Cluster slots.
            async with redis.pipeline(transaction=False) as pipe:
                pipe.get(names.state_key(agent))
                pipe.zcard(names.applied_key(agent))
                pipe.zrevrange(names.applied_key(agent), 0, 0, withscores=True)
                pipe.hlen(names.responses_key(agent))
                pipe.zscore(names.active_key(agent_type), key)
                pipe.get(names.owner_key(agent_type, partition))
                document, applied, last, responses, active, owner = await pipe.execute()
        if document is None and not applied and active is None:
            raise NotFoundError(
                f"Redis has no record of agent {agent} in namespace {names.namespace!r}: it "
                f"saved no state and applied nothing recently (agnext-broker inspect agents "
                f"{agent_type} lists those it has)"
            )
        now = await self._redis_now()
        value = None if document is None else json.loads(document)
        return AgentStateView(
            agent=str(agent),
            state_key=names.state_key(agent),
            partition=partition,
            owner=None if owner is None else text(owner),
            version=None if value is None else int(value.get("version", 0)),
            state=None if value is None else value.get("state"),
            applied=int(applied),
            responses=int(responses),
            last_applied_s=max(0.0, now - float(last[0][1]) / 1_000_000) if last else None,
            last_active_s=None if active is None else max(0.0, now - float(active)),
        )

"""The registry in Redis: live workers, agent types, subscriptions and active agents."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from ...base import Subscription, TypePrefixSubscription, TypeSubscription
from ._names import Names


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    agent_types: tuple[str, ...]
    host: str
    pid: int
    started: float


def subscription_to_json(subscription: Subscription) -> dict[str, str]:
    """The registry form of a subscription.

    Raises:
        ValueError: the broker runtime cannot share this kind of subscription.
    """
    if isinstance(subscription, TypeSubscription):
        return {
            "id": subscription.id,
            "kind": "type",
            "topic_type": subscription.topic_type,
            "agent_type": subscription.agent_type,
        }
    if isinstance(subscription, TypePrefixSubscription):
        return {
            "id": subscription.id,
            "kind": "type_prefix",
            "topic_type_prefix": subscription.topic_type_prefix,
            "agent_type": subscription.agent_type,
        }
    raise ValueError(
        f"The broker runtime shares subscriptions between workers through Redis and supports "
        f"TypeSubscription, DefaultSubscription and TypePrefixSubscription, not "
        f"{type(subscription).__name__}."
    )


def subscription_field(value: dict[str, str]) -> str:
    """The registry field of a subscription: its value, so equal subscriptions share one."""
    pattern = value.get("topic_type", value.get("topic_type_prefix", ""))
    return f"{value['kind']}:{value['agent_type']}:{pattern}"


def subscription_from_json(value: dict[str, str]) -> Subscription:
    if value["kind"] == "type":
        return TypeSubscription(value["topic_type"], value["agent_type"], id=value["id"])
    if value["kind"] == "type_prefix":
        return TypePrefixSubscription(
            value["topic_type_prefix"], value["agent_type"], id=value["id"]
        )
    raise ValueError(f"Unknown subscription kind {value['kind']!r} in the registry.")


class Registry:
    def __init__(self, redis: Redis, names: Names) -> None:
        self._redis = redis
        self._names = names

    # -- workers --------------------------------------------------------------------------------

    async def heartbeat(
        self, worker_id: str, agent_types: list[str], started: float, expiry: float
    ) -> None:
        """Record this worker as alive for ``expiry`` seconds."""
        info = {
            "worker_id": worker_id,
            "agent_types": sorted(agent_types),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": started,
        }
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._names.worker_key(worker_id), json.dumps(info), px=int(expiry * 1000))
            pipe.zadd(self._names.workers_key, {worker_id: now + expiry})
            pipe.zremrangebyscore(self._names.workers_key, "-inf", now)
            await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._names.worker_key(worker_id))
            pipe.zrem(self._names.workers_key, worker_id)
            await pipe.execute()

    async def live_workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired, sorted by id."""
        ids = await self._redis.zrangebyscore(self._names.workers_key, time.time(), "+inf")
        if not ids:
            return []
        documents = await self._redis.mget([self._names.worker_key(str(i)) for i in ids])
        workers = []
        for document in documents:
            if document is None:
                continue
            value = json.loads(document)
            workers.append(
                WorkerInfo(
                    value["worker_id"],
                    tuple(value["agent_types"]),
                    value["host"],
                    int(value["pid"]),
                    float(value["started"]),
                )
            )
        return sorted(workers, key=lambda w: w.worker_id)

    # -- agent types ----------------------------------------------------------------------------

    async def register_type(
        self, agent_type: str, partitions: int, message_types: list[str]
    ) -> int:
        """Record an agent type; returns its partition count (the first registration's)."""
        key = self._names.types_key
        existing = await self._redis.hget(key, agent_type)
        if existing is not None:
            value = json.loads(existing)
            known = sorted(set(value.get("message_types", [])) | set(message_types))
            if known != value.get("message_types"):
                value["message_types"] = known
                await self._redis.hset(key, agent_type, json.dumps(value))
            return int(value["partitions"])
        value = {"partitions": partitions, "message_types": sorted(message_types)}
        if await self._redis.hsetnx(key, agent_type, json.dumps(value)):
            return partitions
        return await self.register_type(agent_type, partitions, message_types)

    async def agent_types(self) -> dict[str, dict[str, Any]]:
        raw = await self._redis.hgetall(self._names.types_key)
        return {_text(k): json.loads(v) for k, v in raw.items()}

    async def partitions_of(self, agent_type: str) -> int | None:
        value = await self._redis.hget(self._names.types_key, agent_type)
        return None if value is None else int(json.loads(value)["partitions"])

    # -- subscriptions --------------------------------------------------------------------------

    async def add_subscription(self, subscription: Subscription) -> None:
        """Share a subscription; an equal one added by another process already counts."""
        value = subscription_to_json(subscription)
        added = await self._redis.hsetnx(
            self._names.subscriptions_key, subscription_field(value), json.dumps(value)
        )
        if added:
            await self._redis.publish(self._names.changes_channel, "subscriptions")

    async def remove_subscription(self, subscription: Subscription) -> None:
        field = subscription_field(subscription_to_json(subscription))
        if await self._redis.hdel(self._names.subscriptions_key, field):
            await self._redis.publish(self._names.changes_channel, "subscriptions")

    async def subscriptions(self) -> list[Subscription]:
        raw = await self._redis.hgetall(self._names.subscriptions_key)
        return [subscription_from_json(json.loads(v)) for v in raw.values()]

    # -- active agents --------------------------------------------------------------------------

    async def touch_active(self, agent_type: str, keys: list[str]) -> None:
        if keys:
            now = time.time()
            await self._redis.zadd(self._names.active_key(agent_type), {k: now for k in keys})

    async def forget_active(self, agent_type: str, keys: list[str]) -> None:
        if keys:
            await self._redis.zrem(self._names.active_key(agent_type), *keys)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

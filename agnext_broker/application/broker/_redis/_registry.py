"""The registry in Redis: live workers, agent types, subscriptions and active agents.

Every key is ``<ns>:{<ns>}:...``: under the namespace's hash tag ``{<ns>}``, so the scripts
below, which touch several of them, run on one Redis Cluster slot. Liveness is judged on Redis'
clock: a worker's heartbeat sets its expiry from ``TIME`` inside the script, and the live
workers are those whose expiry is later than Redis' ``TIME`` now; no worker's own clock is
compared with another's.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from ....base import Subscription, TypePrefixSubscription, TypeSubscription
from .._names import Names
from ._errors import redis_errors
from ._text import text

# KEYS: workers (zset id -> expiry ms), worker-info (hash), subscriptions-version
# ARGV: worker id, its info (JSON), expiry (ms)
# Records the heartbeat, drops the expired, and returns what a worker needs each tick: Redis'
# time (ms), the live workers with their info, the subscriptions' version.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(expired))
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local info = {}
if #live > 0 then info = redis.call('HMGET', KEYS[2], unpack(live)) end
return {now, live, info, redis.call('GET', KEYS[3]) or '0'}
"""

# The same view, without recording a heartbeat.
_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local info = {}
if #live > 0 then info = redis.call('HMGET', KEYS[2], unpack(live)) end
return {now, live, info, redis.call('GET', KEYS[3]) or '0'}
"""

# KEYS: subscriptions, subscriptions-version; ARGV: field, value
_ADD_SUBSCRIPTION = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
"""

_REMOVE_SUBSCRIPTION = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    agent_types: tuple[str, ...]
    host: str
    pid: int
    started: float
    draining: bool = False  # stopping: finishing its turns, taking no partition


@dataclass(frozen=True)
class RegistryView:
    """The live workers as Redis saw them at ``now_ms`` (Redis' clock); ``asked_at`` is when
    this process asked (``time.monotonic()``)."""

    now_ms: int
    workers: tuple[WorkerInfo, ...]
    subscriptions_version: int
    asked_at: float = 0.0

    def hosts(self, agent_type: str) -> list[str]:
        """The ids of the live workers that take partitions of ``agent_type``, sorted (a
        draining worker takes none)."""
        return sorted(
            w.worker_id for w in self.workers if agent_type in w.agent_types and not w.draining
        )

    @property
    def hosted_types(self) -> frozenset[str]:
        """The agent types some live worker hosts (one that drains still answers what it
        has)."""
        return frozenset(t for w in self.workers for t in w.agent_types)

    @property
    def worker_ids(self) -> frozenset[str]:
        return frozenset(w.worker_id for w in self.workers)


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
    def __init__(self, redis: Redis, names: Names, server: str) -> None:
        self._redis = redis
        self._names = names
        self._server = server
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._live = redis.register_script(_LIVE)
        self._add_subscription = redis.register_script(_ADD_SUBSCRIPTION)
        self._remove_subscription = redis.register_script(_REMOVE_SUBSCRIPTION)
        self._view_keys = [
            names.workers_key,
            names.worker_info_key,
            names.subscriptions_version_key,
        ]

    # -- workers --------------------------------------------------------------------------------

    async def heartbeat(
        self,
        worker_id: str,
        agent_types: list[str],
        started: float,
        expiry: float,
        *,
        draining: bool = False,
    ) -> RegistryView:
        """Record this worker as alive for ``expiry`` seconds; return the live workers."""
        info = {
            "worker_id": worker_id,
            "agent_types": sorted(agent_types),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": started,
            "draining": draining,
        }
        args: list[str | int] = [worker_id, json.dumps(info), int(expiry * 1000)]
        asked_at = time.monotonic()
        with redis_errors(self._server):
            reply = await self._heartbeat(keys=self._view_keys, args=args)
        return _view(reply, asked_at)

    async def live_workers(self) -> RegistryView:
        """The live workers, without recording a heartbeat."""
        asked_at = time.monotonic()
        with redis_errors(self._server):
            return _view(await self._live(keys=self._view_keys), asked_at)

    async def leave(self, worker_id: str) -> None:
        with redis_errors(self._server):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._names.workers_key, worker_id)
                pipe.hdel(self._names.worker_info_key, worker_id)
                await pipe.execute()

    # -- agent types ----------------------------------------------------------------------------

    async def register_type(
        self, agent_type: str, partitions: int, message_types: list[str]
    ) -> int:
        """Record an agent type and the message types its handlers take; returns its partition
        count (the first registration's)."""
        key = self._names.types_key
        with redis_errors(self._server):
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
        with redis_errors(self._server):
            raw = await self._redis.hgetall(self._names.types_key)
        return {text(k): json.loads(v) for k, v in raw.items()}

    async def partitions_of(self, agent_type: str) -> int | None:
        with redis_errors(self._server):
            value = await self._redis.hget(self._names.types_key, agent_type)
        return None if value is None else int(json.loads(value)["partitions"])

    # -- subscriptions --------------------------------------------------------------------------

    async def add_subscription(self, subscription: Subscription) -> None:
        """Share a subscription; an equal one added by another process already counts."""
        value = subscription_to_json(subscription)
        keys = [self._names.subscriptions_key, self._names.subscriptions_version_key]
        with redis_errors(self._server):
            await self._add_subscription(
                keys=keys, args=[subscription_field(value), json.dumps(value)]
            )

    async def remove_subscription(self, subscription: Subscription) -> None:
        field = subscription_field(subscription_to_json(subscription))
        keys = [self._names.subscriptions_key, self._names.subscriptions_version_key]
        with redis_errors(self._server):
            await self._remove_subscription(keys=keys, args=[field])

    async def subscriptions(self) -> tuple[int, list[Subscription]]:
        """The subscriptions' version and the subscriptions, read together."""
        with redis_errors(self._server):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._names.subscriptions_version_key)
                pipe.hgetall(self._names.subscriptions_key)
                version, raw = await pipe.execute()
        return int(version or 0), [subscription_from_json(json.loads(v)) for v in raw.values()]

    # -- active agents --------------------------------------------------------------------------

    async def touch_active(self, agent_type: str, keys: list[str]) -> None:
        if keys:
            now = time.time()
            with redis_errors(self._server):
                await self._redis.zadd(self._names.active_key(agent_type), {k: now for k in keys})

    async def forget_active(self, agent_type: str, keys: list[str]) -> None:
        if keys:
            with redis_errors(self._server):
                await self._redis.zrem(self._names.active_key(agent_type), *keys)


def _view(reply: list[Any], asked_at: float) -> RegistryView:
    now_ms, ids, infos, version = reply
    workers = []
    for worker_id, document in zip(ids, infos, strict=True):
        if document is None:
            continue
        value = json.loads(document)
        workers.append(
            WorkerInfo(
                text(worker_id),
                tuple(value["agent_types"]),
                value["host"],
                int(value["pid"]),
                float(value["started"]),
                bool(value.get("draining", False)),
            )
        )
    workers.sort(key=lambda w: w.worker_id)
    return RegistryView(int(now_ms), tuple(workers), int(version), asked_at)

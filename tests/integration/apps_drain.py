"""Agents for the tests of stopping and joining workers while handlers run.

- ``register_slow_tally``: the tally example (``agnext_broker.examples.tally``) with a tallier
  that takes ``TALLY_DELAY`` seconds per item (environment; default 0.1), as an agent calling a
  model would.
- ``register_holder``: ``holder`` agents whose ``Hold`` handler takes a while and records, in
  Redis, every time two instances of one agent handled a message at the same moment (which
  single activation forbids) and the order the messages of each agent were handled in.

Worker subprocesses import them as ``--app tests.integration.apps_drain:<function>``; the
holder reaches Redis through ``AGNEXT_REDIS_URL`` and names its keys after
``AGNEXT_NAMESPACE``, as the worker's own settings do.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass

import redis.asyncio

from agnext_broker import (
    AgentRuntime,
    MessageContext,
    RoutedAgent,
    TypeSubscription,
    event,
    rpc,
)
from agnext_broker.examples.tally import (
    RESULTS_TOPIC,
    WORK_TOPIC,
    Coordinator,
    Reporter,
    Tallier,
    WorkItem,
)

HOLDER_TYPE = "holder"


class SlowTallier(Tallier):
    @event
    async def on_work_item(self, item: WorkItem, ctx: MessageContext) -> None:
        await asyncio.sleep(float(os.environ.get("TALLY_DELAY", "0.1")))
        await super().on_work_item(item, ctx)


async def register_slow_tally(runtime: AgentRuntime) -> None:
    await Coordinator.register(runtime, "coordinator", Coordinator)
    await SlowTallier.register(runtime, "tallier", SlowTallier)
    await Reporter.register(runtime, "reporter", Reporter)
    await runtime.add_subscription(TypeSubscription(WORK_TOPIC, "tallier"))
    await runtime.add_subscription(TypeSubscription(RESULTS_TOPIC, "reporter"))


# -- holders -----------------------------------------------------------------------------------


@dataclass
class Hold:
    seconds: float
    tag: str


@dataclass
class Held:
    tag: str
    instance: str
    pid: int


def holder_keys(namespace: str, key: str) -> tuple[str, str, str]:
    """(who is handling now, the order of tags handled, the overlaps seen) for agent ``key``."""
    base = f"{namespace}-test:holder:{key}"
    return f"{base}:busy", f"{base}:order", f"{namespace}-test:overlaps"


_client: redis.asyncio.Redis | None = None


def _redis() -> redis.asyncio.Redis:
    global _client
    if _client is None:
        _client = redis.asyncio.Redis.from_url(os.environ["AGNEXT_REDIS_URL"])
    return _client


class Holder(RoutedAgent):
    """Takes its time on each ``Hold``; records overlapping activations in Redis."""

    def __init__(self) -> None:
        super().__init__("Holds a message for a while")
        self.instance = uuid.uuid4().hex[:8]

    @rpc
    async def on_hold(self, message: Hold, ctx: MessageContext) -> Held:
        busy, order, overlaps = holder_keys(os.environ["AGNEXT_NAMESPACE"], self.id.key)
        client = _redis()
        if not await client.set(busy, self.instance, nx=True):
            other = await client.get(busy)
            await client.rpush(overlaps, f"{self.id.key}: {self.instance} while {other!r}")
        await client.rpush(order, message.tag)
        try:
            await asyncio.sleep(message.seconds)
        finally:
            if await client.get(busy) == self.instance.encode():
                await client.delete(busy)
        return Held(message.tag, self.instance, os.getpid())


async def register_holder(runtime: AgentRuntime) -> None:
    await Holder.register(runtime, HOLDER_TYPE, Holder)

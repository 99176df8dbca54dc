"""The application the fault scenarios run: one ``ledger`` agent per key, each keeping the ids of
the credits it applied in its saved state, so the checker can tell every effect apart.

- ``Credit`` (event on topic ``credits/<key>``, or RPC): adds ``amount`` and remembers the
  message id, then takes ``nap`` seconds before returning (a worker killed meanwhile has made
  the change in memory only); ``poison`` makes the handler raise (a bad message); ``exclusive``
  also records, in Redis, any moment two instances of one agent handled a credit at once.
- ``Balance`` (RPC): the count and the ids applied.

Every handler invocation writes one byte to ``$CHAOS_DIR/invocations.<pid>`` (a file survives
SIGKILL), so the checker counts handler runs, re-runs included, without touching the servers.

Workers run it as ``agnext-broker worker --app tests.chaos.app:register``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio

from agnext_broker import (
    AgentRuntime,
    MessageContext,
    RoutedAgent,
    TypeSubscription,
    message_handler,
    rpc,
)

LEDGER_TYPE = "ledger"
CREDITS_TOPIC = "credits"


@dataclass
class Credit:
    amount: int = 1
    nap: float = 0.0
    poison: bool = False
    exclusive: bool = False


@dataclass
class Balance:
    pass


@dataclass
class Snapshot:
    count: int
    ids: list[str] = field(default_factory=list)


class PoisonError(RuntimeError):
    """What a poisoned credit raises, every time."""


_invocations: int | None = None
_redis: redis.asyncio.Redis | None = None


def _count_invocation() -> None:
    global _invocations
    directory = os.environ.get("CHAOS_DIR")
    if directory is None:
        return
    if _invocations is None:
        path = os.path.join(directory, f"invocations.{os.getpid()}")
        _invocations = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_invocations, b".")


def overlaps_key(namespace: str) -> str:
    return f"{namespace}-chaos:overlaps"


class Ledger(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("Keeps the credits of one key")
        self.count = 0
        self.ids: list[str] = []
        self.instance = uuid.uuid4().hex[:8]

    @message_handler
    async def on_credit(self, credit: Credit, ctx: MessageContext) -> int:
        _count_invocation()
        if credit.poison:
            raise PoisonError(f"credit {ctx.message_id} is poisoned")
        if credit.exclusive:
            await self._exclusive(credit, ctx)
        else:
            self.count += credit.amount
            self.ids.append(ctx.message_id)
            if credit.nap:
                await asyncio.sleep(credit.nap)
        return self.count

    async def _exclusive(self, credit: Credit, ctx: MessageContext) -> None:
        global _redis
        if _redis is None:
            _redis = redis.asyncio.Redis.from_url(os.environ["AGNEXT_REDIS_URL"])
        namespace = os.environ["AGNEXT_NAMESPACE"]
        busy = f"{namespace}-chaos:busy:{self.id.key}"
        if not await _redis.set(busy, self.instance, nx=True, px=60_000):
            await _redis.rpush(overlaps_key(namespace), f"{self.id} {self.instance}")
        try:
            self.count += credit.amount
            self.ids.append(ctx.message_id)
            if credit.nap:
                await asyncio.sleep(credit.nap)
        finally:
            if await _redis.get(busy) == self.instance.encode():
                await _redis.delete(busy)

    @rpc
    async def on_balance(self, request: Balance, ctx: MessageContext) -> Snapshot:
        return Snapshot(self.count, list(self.ids))

    async def save_state(self) -> Mapping[str, Any]:
        return {"count": self.count, "ids": self.ids}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.count = int(state.get("count", 0))
        self.ids = list(state.get("ids", []))


async def register(runtime: AgentRuntime) -> None:
    await Ledger.register(runtime, LEDGER_TYPE, Ledger)
    await runtime.add_subscription(TypeSubscription(CREDITS_TOPIC, LEDGER_TYPE))

"""An app for the dead-letter commands' tests: ``picky`` agents whose event handler fails until
the Redis key ``<ns>:test-fixed`` exists (the "fix"), then records each job in its state.

``agnext-broker worker --app tests.cli.apps:register_picky`` (with ``AGNEXT_REDIS_URL`` and
``AGNEXT_NAMESPACE`` set, as a worker has them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from agnext_broker import AgentRuntime, MessageContext, RoutedAgent, TypeSubscription, event

PICKY_TYPE = "picky"
JOBS_TOPIC = "jobs"  # events to picky/<topic source>


def fixed_flag(namespace: str) -> str:
    """The key whose existence makes the handler work."""
    return f"{namespace}:test-fixed"


@dataclass
class Job:
    n: int


class Picky(RoutedAgent):
    def __init__(self, client: redis.asyncio.Redis, flag: str) -> None:
        super().__init__("Fails until fixed")
        self._client = client
        self._flag = flag
        self.done: list[int] = []

    @event
    async def on_job(self, job: Job, ctx: MessageContext) -> None:
        if not await self._client.exists(self._flag):
            raise RuntimeError(f"picky agent {self.id.key} is not fixed yet (job {job.n})")
        self.done.append(job.n)

    async def save_state(self) -> Mapping[str, Any]:
        return {"done": self.done}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.done = list(state.get("done", []))


async def register_picky(runtime: AgentRuntime) -> None:
    client = redis.asyncio.Redis.from_url(os.environ["AGNEXT_REDIS_URL"])
    flag = fixed_flag(os.environ["AGNEXT_NAMESPACE"])
    await Picky.register(runtime, PICKY_TYPE, lambda: Picky(client, flag))
    await runtime.add_subscription(TypeSubscription(JOBS_TOPIC, PICKY_TYPE))

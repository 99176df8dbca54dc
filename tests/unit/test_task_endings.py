"""A stopping runtime ends its tasks even when one of them loses its cancellation.

On Python 3.11, ``asyncio.wait_for`` (used by redis-py for every command it writes, and by
aiormq for every RPC) drops a cancellation that arrives just as what it waits for has finished:
the task goes on as if it had not been cancelled. A heartbeat loop stopped only by ``cancel()``
then never ended, and ``runtime.stop()`` waited for it forever. The fakes here lose the first
cancellation the same way, deterministically.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agnext_broker.application.broker import BrokerSettings
from agnext_broker.application.broker._liveness import Liveness
from agnext_broker.application.broker._redis import RegistryView
from agnext_broker.application.broker._tasks import cancel_and_wait

BOUND = 10.0  # far more than the tests need: only a task that never ends reaches it


async def lose_first_cancellation(lost: list[bool], reached: asyncio.Event) -> None:
    """Wait until cancelled; the first cancellation is lost, as ``wait_for`` loses it."""
    reached.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        if lost:
            raise
        lost.append(True)


class ForgetfulRegistry:
    """A registry whose heartbeat loses the first cancellation that reaches it."""

    def __init__(self) -> None:
        self.lost: list[bool] = []
        self.in_heartbeat = asyncio.Event()

    async def heartbeat(self, *args: Any, **kwargs: Any) -> RegistryView:
        if not self.lost:
            await lose_first_cancellation(self.lost, self.in_heartbeat)
        return RegistryView(now_ms=0, workers=(), subscriptions_version=0)


async def test_liveness_stop_ends_a_heartbeat_that_lost_its_cancellation() -> None:
    registry = ForgetfulRegistry()
    settings = BrokerSettings(heartbeat_interval=0.2, worker_expiry=1.0)
    liveness = Liveness(registry, settings, list, 0.0, lambda view: None)  # type: ignore[arg-type]
    liveness.start()
    await asyncio.wait_for(registry.in_heartbeat.wait(), BOUND)

    async with asyncio.timeout(BOUND):
        await liveness.stop()
    assert registry.lost, "the heartbeat did not lose the cancellation: nothing was tested"
    assert not liveness.running


async def test_cancel_and_wait_cancels_again_until_the_task_ended() -> None:
    lost: list[bool] = []
    reached = asyncio.Event()

    async def loop() -> None:
        await lose_first_cancellation(lost, reached)
        await asyncio.Event().wait()  # goes on, as a loop that lost its cancellation does

    task = asyncio.create_task(loop())
    await asyncio.wait_for(reached.wait(), BOUND)
    assert await cancel_and_wait([task], BOUND) == set()
    assert lost
    assert task.cancelled()


async def test_cancel_and_wait_gives_up_after_its_bound() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # it runs up to its first wait
    assert await cancel_and_wait([task], 0.2) == {task}
    release.set()
    await asyncio.wait_for(task, BOUND)

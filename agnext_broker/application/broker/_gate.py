"""A bounded number of places, each caller waiting its turn until its own deadline.

It does what an ``asyncio.Semaphore`` acquired under ``asyncio.timeout_at`` does, for a fraction
of the memory per waiting caller (one future and one timer, no context managers or task
cancellation), because a caller that starts tens of thousands of publishes at once has that many
callers waiting here: what each of them holds is the memory the caller grows by.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Gate:
    __slots__ = ("_free", "_waiters", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def taken(self) -> int:
        return self.capacity - self._free

    async def enter(self, deadline: float) -> bool:
        """Take a place, waiting until ``deadline`` (``loop.time()``) at most; ``False`` if
        none came free by then (first come, first served)."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.leave()  # granted just as it was cancelled: the place goes to the next
            raise
        finally:
            timer.cancel()

    def leave(self) -> None:
        """Give a place back: to the first caller still waiting, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self._free += 1


class Place:
    """``async with Place(gate, deadline, timed_out):`` holds a place of ``gate`` for the block;
    ``timed_out()`` makes the error raised when none came free by ``deadline``."""

    __slots__ = ("_deadline", "_gate", "_timed_out")

    def __init__(self, gate: Gate, deadline: float, timed_out: Callable[[], BaseException]) -> None:
        self._gate = gate
        self._deadline = deadline
        self._timed_out = timed_out

    async def __aenter__(self) -> None:
        if not await self._gate.enter(self._deadline):
            raise self._timed_out()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._gate.leave()

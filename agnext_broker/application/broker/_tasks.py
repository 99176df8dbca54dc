"""Ending the runtime's own tasks within a bound.

One ``task.cancel()`` is not always enough to end a task: on Python 3.11, ``asyncio.wait_for``
returns the result of the awaitable it waits for when that awaitable finished just as the task
was cancelled, and the cancellation is lost (CPython gh-86296, fixed in 3.12). redis-py sends
every command through it (its socket timeout), and aiormq waits for every RPC through it, so a
heartbeat cancelled while its command is being written carries on as if nothing happened, and
``await task`` after ``task.cancel()`` waits forever. The helpers here cancel again until the
task has ended, and give up after a bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger("agnext_broker")

# Seconds a stopping runtime gives one cleanup step (a task to end, a connection to close).
CLOSE_BOUND = 5.0
# Seconds between two cancellations of a task that has not ended yet (a task that did not
# lose its cancellation gets that long to end without another).
_CANCEL_AGAIN_AFTER = 0.25


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any] | None], within: float = CLOSE_BOUND
) -> set[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait until they ended, cancelling again those that go on, for at
    most ``within`` seconds. Returns the tasks still running then (they are logged)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    every = {task for task in tasks if task is not None}
    left_running = {task for task in every if not task.done()}
    while left_running:
        left = deadline - loop.time()
        if left <= 0:
            for task in left_running:
                logger.warning("%r did not end within %g s of its cancellation", task, within)
            break
        for task in left_running:
            task.cancel()
        _, left_running = await asyncio.wait(left_running, timeout=min(left, _CANCEL_AGAIN_AFTER))
    for task in every - left_running:
        if not task.cancelled():
            task.exception()  # retrieved: what it raised while ending is of no interest here
    return left_running

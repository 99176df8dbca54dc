"""The two ways the runtime tries a call to RabbitMQ or Redis again (tenacity, only once a call
failed: the usual call pays nothing for it).

- :func:`connect_within`: a first connect, tried again while the server cannot be reached, for
  at most ``connect_timeout``; a refused login fails at once.
- :func:`until_available`: a call made while handling a message (load or save an agent's
  record), tried again for as long as the server cannot be reached, with backoff from 50 ms to
  2 s. The turn waits meanwhile; a stopping worker's drain deadline ends the wait.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from ...base import AccessRefusedError, ServiceUnavailableError

logger = logging.getLogger("agnext_broker")

T = TypeVar("T")


def _transient(error: BaseException) -> bool:
    return isinstance(error, ServiceUnavailableError) and not isinstance(error, AccessRefusedError)


async def _attempt(call: Callable[[], Awaitable[T]]) -> T:
    """``await call()``; if this task was cancelled meanwhile, raise ``CancelledError`` whatever
    the call raised. The client libraries can turn a cancellation that arrives in the middle of
    a connect into a connection error, which would be tried again: a stop during start-up, or
    a signal, would then wait for the whole connect timeout."""
    try:
        return await call()
    finally:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError


async def connect_within(connect: Callable[[float], Awaitable[T]], seconds: float, hint: str) -> T:
    """``await connect(seconds left)``, tried again for up to ``seconds`` while the server
    cannot be reached.

    Raises:
        AccessRefusedError: the server refused the credentials (not tried again).
        ServiceUnavailableError: still unreachable after ``seconds``; its message ends with
            ``hint`` (what to check).
    """
    retrying = AsyncRetrying(
        stop=stop_after_delay(seconds),
        wait=wait_exponential(multiplier=0.1, max=1.0),
        retry=retry_if_exception(_transient),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                left = seconds - (attempt.retry_state.seconds_since_start or 0.0)
                return await _attempt(functools.partial(connect, max(left, 0.1)))
    except AccessRefusedError:
        raise
    except ServiceUnavailableError as e:
        raise ServiceUnavailableError(f"{e} (tried for {seconds:g} s); {hint}") from e.__cause__
    raise AssertionError("unreachable")  # pragma: no cover


async def until_available(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``await call()``, tried again while the server cannot be reached (logged once, as
    ``what`` failed)."""
    try:
        return await call()
    except ServiceUnavailableError as e:
        if isinstance(e, AccessRefusedError):
            raise
        logger.warning("%s: %s; trying again until it answers", what, e)

    def log_long_waits(state: RetryCallState) -> None:
        if state.attempt_number % 30 == 0:
            outcome = state.outcome
            logger.warning(
                "%s: still failing after %d attempts (%s)",
                what,
                state.attempt_number,
                outcome.exception() if outcome is not None else "?",
            )

    async for attempt in AsyncRetrying(
        wait=wait_exponential(multiplier=0.05, max=2.0),
        retry=retry_if_exception(_transient),
        before_sleep=log_long_waits,
        reraise=True,
    ):
        with attempt:
            return await _attempt(call)
    raise AssertionError("unreachable")  # pragma: no cover

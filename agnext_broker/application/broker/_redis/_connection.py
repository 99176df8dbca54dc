"""Connecting to Redis: a client whose every call is bounded, and a first connect that either
succeeds within ``connect_timeout`` or says which server failed and why."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._retrying import connect_within
from .._settings import redact
from ._errors import redis_errors


def redis_client(url: str, timeout: float, **options: Any) -> Redis:
    """A client of ``url`` whose connects and replies each wait at most ``timeout`` seconds
    (``options``: redis-py's TLS arguments for ``rediss://``).

    redis-py's own retries are off: the runtime decides what waits for Redis and for how long
    (one retry layer per call)."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


async def connect_redis(url: str, connect_timeout: float, **options: Any) -> Redis:
    """A connected client; the first connect is tried again for up to ``connect_timeout``
    seconds.

    Raises:
        AccessRefusedError: Redis refused the credentials (at once, not tried again).
        ServiceUnavailableError: Redis could not be reached within ``timeout``.
    """
    server = redact(url)
    client = redis_client(url, connect_timeout, **options)

    async def ping(_: float) -> None:
        with redis_errors(server):
            await client.ping()

    try:
        await connect_within(
            ping, connect_timeout, "check AGNEXT_REDIS_URL and that Redis is running"
        )
    except BaseException:
        await client.aclose()
        raise
    return client

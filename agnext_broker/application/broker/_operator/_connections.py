"""The connections of an operator's command: Redis and RabbitMQ, each opened on first use (so
that ``inspect workers`` needs no RabbitMQ), with the runtime's adapters, TLS and errors."""

from __future__ import annotations

import contextlib
from types import TracebackType

from aio_pika.abc import AbstractRobustConnection
from redis.asyncio import Redis

from .._amqp._connection import connect_amqp
from .._names import Names
from .._redis import PartitionClaims, Registry, connect_redis
from .._settings import BrokerSettings, redact
from .._tls import amqp_tls, redis_tls


class Connections:
    """Opened on first use; ``close()`` (or ``async with``) closes what was opened."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.names = Names(settings.namespace)
        self.redis_server = redact(settings.redis)
        self.amqp_server = redact(settings.amqp)
        self._redis: Redis | None = None
        self._amqp: AbstractRobustConnection | None = None

    async def redis(self) -> Redis:
        """Raises: ServiceUnavailableError, AccessRefusedError (as :func:`connect_redis`)."""
        if self._redis is None:
            settings = self.settings
            self._redis = await connect_redis(
                settings.redis, settings.connect_timeout, **redis_tls(settings)
            )
        return self._redis

    async def registry(self) -> Registry:
        return Registry(await self.redis(), self.names, self.redis_server)

    async def claims(self) -> PartitionClaims:
        # Only read: the worker id is that of no worker.
        return PartitionClaims(await self.redis(), self.names, "", self.redis_server)

    async def amqp(self) -> AbstractRobustConnection:
        """Raises: ServiceUnavailableError, AccessRefusedError (as :func:`connect_amqp`)."""
        if self._amqp is None:
            settings = self.settings
            name = f"agnext-{self.names.namespace}-operator-{settings.worker_id}"
            self._amqp = await connect_amqp(
                settings.amqp,
                self.amqp_server,
                name,
                settings.connect_timeout,
                **amqp_tls(settings),
            )
        return self._amqp

    async def close(self) -> None:
        if self._amqp is not None:
            with contextlib.suppress(Exception):  # a connection already cut is closed
                await self._amqp.close()
            self._amqp = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

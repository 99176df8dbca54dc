"""Connecting to RabbitMQ: robust connections (aio-pika reconnects them by itself once they
were up), and a first connect that either succeeds within ``connect_timeout`` or says which
server failed and why."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

from .._retrying import connect_within
from ._errors import amqp_errors

# Seconds between aio-pika's reconnection attempts after a connection was lost (its default of
# 5 s delays every recovery by up to that much).
RECONNECT_INTERVAL = 1.0
# How long closing a connection that never came up may take.
CLOSE_TIMEOUT = 5.0


async def connect_amqp(
    url: str, server: str, name: str, connect_timeout: float, **options: Any
) -> AbstractRobustConnection:
    """A robust connection named ``name`` (as the management UI shows it).

    The first connect is tried again while the broker cannot be reached, for up to
    ``connect_timeout`` seconds in all; a refused login or vhost fails at once. ``options``
    go to aio-pika (``ssl_context`` for ``amqps://``).

    Raises:
        AccessRefusedError: the broker refused the user, its password or the vhost.
        ServiceUnavailableError: the broker could not be reached within ``connect_timeout``.
    """

    async def connect(left: float) -> AbstractRobustConnection:
        # Made here rather than by aio_pika.connect_robust, so that an attempt that fails or is
        # cancelled (a signal during start-up) can be closed: left alone, its reconnection task
        # would go on trying forever in the background.
        connection = aio_pika.RobustConnection(
            URL(url),
            client_properties={"connection_name": name},
            reconnect_interval=RECONNECT_INTERVAL,
            **options,
        )
        try:
            with amqp_errors(server):
                await connection.connect(timeout=left)
        except BaseException:
            await asyncio.shield(_close_quietly(connection))
            raise
        return connection

    return await connect_within(
        connect, connect_timeout, "check AGNEXT_AMQP_URL and that RabbitMQ is running"
    )


async def _close_quietly(connection: aio_pika.RobustConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT)

"""Connecting to RabbitMQ: robust connections (aio-pika reconnects them by itself once they
were up), and a first connect that either succeeds within ``connect_timeout`` or says which
server failed and why."""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from .._retrying import connect_within
from ._errors import amqp_errors

# Seconds between aio-pika's reconnection attempts after a connection was lost (its default of
# 5 s delays every recovery by up to that much).
RECONNECT_INTERVAL = 1.0


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
        with amqp_errors(server):
            connection: AbstractRobustConnection = await aio_pika.connect_robust(
                url,
                client_properties={"connection_name": name},
                timeout=left,
                reconnect_interval=RECONNECT_INTERVAL,
                **options,
            )
            return connection

    return await connect_within(
        connect, connect_timeout, "check AGNEXT_AMQP_URL and that RabbitMQ is running"
    )

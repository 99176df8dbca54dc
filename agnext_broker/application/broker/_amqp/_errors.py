"""aiormq's and aio-pika's exceptions, translated into agnext-broker's where the runtime calls
RabbitMQ.

- a refused login (``ProbableAuthenticationError``), a vhost the broker will not open for the
  user (it answers ``Connection.Open`` with ``Connection.Close``: the vhost does not exist, or
  the user has no permissions on it), and a refused resource (``ACCESS_REFUSED`` on a channel:
  no permission, a queue in exclusive use) become :class:`AccessRefusedError`;
- a channel the broker closed for a declaration that does not match (``PRECONDITION_FAILED``,
  ``NOT_FOUND``) becomes :class:`TopologyError`;
- everything that means the connection or channel is gone or did not answer (refused or cut
  connections, closed channels, timeouts) becomes :class:`ServiceUnavailableError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import aiormq
from aio_pika.exceptions import PublishError

from ....base import AccessRefusedError, AgnextError, ServiceUnavailableError, TopologyError


def _user_and_vhost(server: str) -> tuple[str, str]:
    parts = urlsplit(server)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return parts.username or "guest", vhost


def translate(error: BaseException, server: str) -> BaseException:
    """The agnext-broker error for ``error``, raised by a call to RabbitMQ at ``server``."""
    user, vhost = _user_and_vhost(server)
    if isinstance(error, aiormq.exceptions.ProbableAuthenticationError):
        return AccessRefusedError(
            f"RabbitMQ at {server} refused the login of user {user!r}: {error.args[0]}; check "
            "the user name and password in AGNEXT_AMQP_URL"
        )
    if isinstance(error, aiormq.exceptions.InvalidFrameError) and "OpenOk" in str(error):
        return AccessRefusedError(
            f"RabbitMQ at {server} refused to open vhost {vhost!r} for user {user!r}: the vhost "
            "was not found or the user has no permissions on it (rabbitmqctl list_vhosts, "
            "rabbitmqctl list_permissions -p <vhost>)"
        )
    if isinstance(error, aiormq.exceptions.ChannelAccessRefused):
        return AccessRefusedError(f"RabbitMQ at {server} refused user {user!r}: {_reason(error)}")
    if isinstance(
        error, aiormq.exceptions.ChannelPreconditionFailed | aiormq.exceptions.ChannelNotFoundEntity
    ):
        return TopologyError(f"RabbitMQ at {server} refused: {_reason(error)}")
    if isinstance(error, TimeoutError):
        return ServiceUnavailableError(f"RabbitMQ at {server} did not answer in time")
    if isinstance(
        error,
        aiormq.exceptions.AMQPError
        | aiormq.exceptions.ChannelInvalidStateError
        | ConnectionError
        | OSError,
    ):
        return ServiceUnavailableError(f"RabbitMQ at {server} cannot be reached: {_reason(error)}")
    return error


def _reason(error: BaseException) -> str:
    if isinstance(error, aiormq.exceptions.ChannelClosed) and len(error.args) == 2:
        return str(error.args[1])  # (reply code, reply text)
    return str(error) or type(error).__name__


@contextmanager
def amqp_errors(server: str) -> Iterator[None]:
    """Raise aiormq's and aio-pika's errors as agnext-broker's (``from`` the original).

    ``PublishError`` (a ``mandatory`` message the broker returned) is left to the publisher,
    which knows what was returned."""
    try:
        yield
    except PublishError:
        raise
    except (
        aiormq.exceptions.AMQPError,
        aiormq.exceptions.ChannelInvalidStateError,
        ConnectionError,
        OSError,
        TimeoutError,
    ) as e:
        if isinstance(e, AgnextError):
            raise
        raise translate(e, server) from e

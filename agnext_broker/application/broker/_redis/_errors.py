"""redis-py's exceptions, translated into agnext-broker's where the runtime calls Redis.

- ``AuthenticationError``, ``AuthorizationError``, ``NoPermissionError`` (wrong password, a user
  without the command or key pattern) become :class:`AccessRefusedError`;
- every other ``RedisError`` (connection refused or cut, a timeout, a server still loading, out
  of memory, a read-only replica) and ``OSError`` become :class:`ServiceUnavailableError`: Redis
  cannot take the call now, and the caller may wait and try again.

``NoScriptError`` is not translated: the store reloads its scripts itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as redis_exceptions

from ....base import AccessRefusedError, ServiceUnavailableError

_ACCESS = (
    redis_exceptions.AuthenticationError,
    redis_exceptions.AuthorizationError,
    redis_exceptions.NoPermissionError,
)
_UNAVAILABLE = (redis_exceptions.RedisError, OSError)


def translate(error: BaseException, server: str) -> BaseException:
    """The agnext-broker error for ``error``, raised by a call to Redis at ``server``."""
    if isinstance(error, _ACCESS):
        return AccessRefusedError(
            f"Redis at {server} refused access: {error}; check the user, its password and its "
            "ACL (commands, key patterns)"
        )
    if isinstance(error, _UNAVAILABLE):
        detail = str(error) or type(error).__name__
        return ServiceUnavailableError(f"Redis at {server} cannot be reached: {detail}")
    return error


@contextmanager
def redis_errors(server: str) -> Iterator[None]:
    """Raise redis-py's errors as agnext-broker's (``from`` the original)."""
    try:
        yield
    except redis_exceptions.NoScriptError:
        raise
    except _UNAVAILABLE as e:
        raise translate(e, server) from e

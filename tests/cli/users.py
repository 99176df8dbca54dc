"""``agnext-broker`` run by a user whose URLs hold passwords: every command's output is checked
for them (they must never be printed)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.cli.commands import Result, agnext, assert_one_line_error


def with_password(url: str, password: str) -> str:
    """``url`` with its user's password replaced."""
    parts = urlsplit(url)
    login, _, host = parts.netloc.rpartition("@")
    user = login.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@dataclass
class User:
    """Runs ``agnext-broker`` with ``AGNEXT_AMQP_URL``, ``AGNEXT_REDIS_URL`` and
    ``AGNEXT_NAMESPACE`` set to the test's servers and namespace."""

    amqp_url: str
    redis_url: str
    namespace: str
    secrets: Sequence[str] = field(default_factory=list)

    async def run(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        settings = {
            "AGNEXT_AMQP_URL": self.amqp_url,
            "AGNEXT_REDIS_URL": self.redis_url,
            "AGNEXT_NAMESPACE": self.namespace,
            "AGNEXT_CONNECT_TIMEOUT": "10",
        }
        result = await agnext(*args, env={**settings, **(env or {})})
        for secret in self.secrets:
            assert secret not in result.stdout + result.stderr, f"a password was shown\n{result}"
        return result

    async def ok(self, *args: str) -> Result:
        result = await self.run(*args)
        assert result.code == 0, f"agnext-broker {' '.join(args)}: {result}"
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self.ok(*args, "--json")).stdout)

    async def fails(self, *args: str) -> str:
        """The one ``Error:`` line of a refused command (nothing on stdout)."""
        result = await self.run(*args)
        assert_one_line_error(result)
        assert result.stdout == "", str(result)
        return result.stderr.strip()

"""Fixtures of the command-line tests: logins with passwords on the test's servers, and ``user``,
which runs ``agnext-broker`` with them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.cli.users import User
from tests.servers import AnyRabbitMQ, AnyRedis, RabbitMQServer


@dataclass(frozen=True)
class Login:
    url: str
    password: str | None


def _with_login(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(scope="session")
def amqp_login(rabbitmq: AnyRabbitMQ) -> Iterator[Login]:
    """A RabbitMQ user of its own with a password (a server given by URL: that URL's)."""
    if not isinstance(rabbitmq, RabbitMQServer):
        yield Login(rabbitmq.amqp_url, urlsplit(rabbitmq.amqp_url).password)
        return
    user, password = f"operator-{uuid.uuid4().hex[:6]}", f"amqp-pw-{uuid.uuid4().hex}"
    rabbitmq.ctl("add_user", user, password)
    rabbitmq.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    try:
        yield Login(_with_login(rabbitmq.amqp_url, user, password), password)
    finally:
        if rabbitmq.is_running:
            rabbitmq.ctl("delete_user", user, check=False)


@pytest.fixture
def redis_login(redis_server: AnyRedis) -> Iterator[Login]:
    """A Redis ACL user of its own with a password (for one test: a Redis restarted by another
    test forgets its ACL users)."""
    user, password = f"operator-{uuid.uuid4().hex[:6]}", f"redis-pw-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.acl_setuser(
            user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
            commands=["+@all"],
        )  # fmt: skip
        yield Login(_with_login(redis_server.url, user, password), password)
    finally:
        with contextlib.suppress(redis.RedisError):
            client.acl_deluser(user)
        client.close()


@pytest.fixture
def user(amqp_login: Login, redis_login: Login, namespace: str) -> User:
    secrets = [s for s in (amqp_login.password, redis_login.password) if s]
    return User(amqp_login.url, redis_login.url, namespace, secrets)

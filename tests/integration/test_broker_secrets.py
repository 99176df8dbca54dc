"""Credentials never show: not in a worker's logs (its start, the messages it handles, a Redis
restart and a RabbitMQ reconnect), not in its ``/metrics``, ``/readyz`` or ``/healthz``, not in
a client's log records, not in the errors of a start refused for a wrong password (their
``str()``, ``repr()`` and whole traceback), not in ``agnext-broker worker --check``.

The passwords are distinctive and hold characters a URL must percent-encode, so each is looked
for by its distinctive part, which every form of it (as given, encoded, decoded) contains. The
worker takes its URLs from ``AGNEXT_AMQP_URL`` / ``AGNEXT_REDIS_URL``, its Redis password in the
query string (``?password=``, which redis-py reads too); the client has it in the userinfo.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis.asyncio

from agnext_broker import AccessRefusedError, AgentId, TopicId
from agnext_broker.application.broker import BrokerAgentRuntime
from tests.integration.apps import (
    COUNTER_TYPE,
    FRAGILE_TOPIC,
    INCREMENTS_TOPIC,
    AppError,
    Explode,
    Increment,
    ReadCount,
)
from tests.integration.workers import (
    REPO_ROOT,
    RuntimePool,
    WorkerPool,
    bounded,
    broker_settings,
    wait_until,
    workers_fixture,  # noqa: F401
)
from tests.servers import RabbitMQServer, RedisServer, free_port

pytestmark = pytest.mark.integration

URL_CHARACTERS = "/:@+%? #"  # each must be percent-encoded in a URL's userinfo or query


@dataclass(frozen=True)
class Secret:
    """A user and its password; ``mark`` is the distinctive part of the password."""

    user: str
    mark: str

    @property
    def password(self) -> str:
        return self.mark + URL_CHARACTERS

    @property
    def quoted(self) -> str:
        return quote(self.password, safe="")

    def assert_absent(self, what: str, text: str) -> None:
        assert self.mark not in text, f"{what} shows the password of {self.user}:\n{text}"


def make_secret(namespace: str, role: str) -> Secret:
    return Secret(f"{namespace}-{role}", f"Pw{role}{uuid.uuid4().hex}")


@pytest.fixture
def secret(
    private_rabbitmq: RabbitMQServer, private_redis_server: RedisServer, namespace: str
) -> Iterator[Secret]:
    """A RabbitMQ user (vhost ``/``) and a Redis ACL user, both with the same password."""
    user = make_secret(namespace, "secret")
    private_rabbitmq.ctl("add_user", user.user, user.password)
    try:
        private_rabbitmq.ctl("set_permissions", "-p", "/", user.user, ".*", ".*", ".*")
        set_redis_user(private_redis_server, user)
        yield user
    finally:
        private_rabbitmq.ctl("delete_user", user.user)
        if private_redis_server.is_running:
            private_redis_server.command("ACL", "DELUSER", user.user)


def set_redis_user(server: RedisServer, user: Secret) -> None:
    reply = server.command(
        "ACL", "SETUSER", user.user, "reset", "on", f">{user.password}", "~*", "&*", "+@all"
    )
    assert reply == b"+OK", reply


def amqp_url(server: RabbitMQServer, user: str, password: str) -> str:
    return f"amqp://{user}:{quote(password, safe='')}@127.0.0.1:{server.port}/"


def redis_url(server: RedisServer, user: str, password: str) -> str:
    return f"redis://{user}:{quote(password, safe='')}@127.0.0.1:{server.port}/0"


def redis_query_url(server: RedisServer, user: str, password: str) -> str:
    """The same, with the credentials in the query string."""
    query = f"username={quote(user, safe='')}&password={quote(password, safe='')}"
    return f"redis://127.0.0.1:{server.port}/0?{query}"


def records(caplog: pytest.LogCaptureFixture) -> str:
    """This process's log lines as they were formatted (with tracebacks), and every field of
    their records (the extras a JSON formatter would show)."""
    fields = []
    for record in caplog.records:
        for name, value in vars(record).items():
            try:
                fields.append(f"{name}={value}")
            except Exception as e:  # an object whose str() fails once its connection is gone
                fields.append(f"{name}=<{type(e).__name__}>")
    return caplog.text + "\n".join(fields)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_a_worker_and_a_client_never_show_their_passwords(
    secret: Secret,
    private_rabbitmq: RabbitMQServer,
    private_redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
    namespace: str,
    workers: WorkerPool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    worker = workers.start_worker(
        "register_counter_and_fragile",
        env={
            "AGNEXT_AMQP_URL": amqp_url(private_rabbitmq, secret.user, secret.password),
            "AGNEXT_REDIS_URL": redis_query_url(private_redis_server, secret.user, secret.password),
            "AGNEXT_HEALTH_PORT": str(port),
            "AGNEXT_HEALTH_HOST": "127.0.0.1",
            "AGNEXT_LOG_LEVEL": "debug",
            "AGNEXT_LOG_FORMAT": "json",
            "AGNEXT_HANDLER_ATTEMPTS": "1",
        },
    )
    await workers.wait_registered(redis_client, worker)
    answers: list[str] = []

    async def scrape(path: str) -> tuple[int, str]:
        status, body = await asyncio.to_thread(get, port, path)
        answers.append(f"{path} {status}\n{body}")
        return status, body

    async def ready(expected: bool) -> bool:
        status, _ = await scrape("/readyz")
        return (status == 200) == expected

    pool = RuntimePool(
        amqp_url(private_rabbitmq, secret.user, secret.password),
        redis_url(private_redis_server, secret.user, secret.password),
        namespace,
    )
    try:
        client = await pool.start()
        agent = AgentId(COUNTER_TYPE, "k")
        assert await client.send_message(Increment(1), agent) == 1
        await client.publish_message(Increment(1), TopicId(INCREMENTS_TOPIC, "k"))
        with pytest.raises(AppError):
            await client.send_message(Explode("on purpose"), agent)
        await client.publish_message(Increment(1), TopicId(FRAGILE_TOPIC, "k"))  # dead-lettered
        await wait_until(
            lambda: asyncio.sleep(0, "dead-lettered" in worker.log()),
            timeout=30,
            what="the worker dead-letters the fragile event",
            details=workers.logs,
        )
        await wait_until(lambda: ready(True), timeout=30, what="the worker is ready")
        for path in ("/metrics", "/healthz", "/nowhere"):
            await scrape(path)

        # Redis goes away and comes back (its ACL users with it: they live in memory).
        await private_redis_server.astop()
        await wait_until(lambda: ready(False), timeout=30, what="the worker sees Redis gone")
        await private_redis_server.astart()
        set_redis_user(private_redis_server, secret)
        await wait_until(lambda: ready(True), timeout=60, what="the worker is back on Redis")

        # RabbitMQ drops every connection: the worker and the client reconnect.
        await private_rabbitmq.actl("close_all_connections", "test: reconnect")
        await wait_until(
            lambda: asyncio.sleep(0, "connected to RabbitMQ at" in worker.log()),
            timeout=30,
            what="the worker reconnects to RabbitMQ",
            details=workers.logs,
        )
        await wait_until(lambda: ready(True), timeout=60, what="the worker is ready again")
        assert await client.send_message(ReadCount(), agent) == 2
        await scrape("/metrics")
    finally:
        await pool.close()
    assert await workers.terminate(worker) == 0, worker.log()

    log = worker.log()
    assert "starting broker runtime" in log
    assert "heartbeat recorded again: Redis is back" in log, log
    secret.assert_absent("the worker's log", log)
    for answer in answers:
        secret.assert_absent("the health port", answer)
    secret.assert_absent("the client's log records", records(caplog))


async def test_a_start_refused_for_a_wrong_password_never_shows_it(
    secret: Secret,
    private_rabbitmq: RabbitMQServer,
    private_redis_server: RedisServer,
    namespace: str,
    workers: WorkerPool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = make_secret(namespace, "wrong")
    good_amqp = amqp_url(private_rabbitmq, secret.user, secret.password)
    good_redis = redis_url(private_redis_server, secret.user, secret.password)
    bad_amqp = amqp_url(private_rabbitmq, secret.user, wrong.password)
    bad_redis = redis_url(private_redis_server, secret.user, wrong.password)
    bad_redis_query = redis_query_url(private_redis_server, secret.user, wrong.password)

    for amqp, redis_, server in (
        (bad_amqp, good_redis, "RabbitMQ"),
        (good_amqp, bad_redis, "Redis"),
        (good_amqp, bad_redis_query, "Redis"),
    ):
        settings = broker_settings(amqp, redis_, namespace, connect_timeout=5)
        runtime = BrokerAgentRuntime(settings)
        try:
            with pytest.raises(AccessRefusedError) as refused:
                await bounded(runtime.start(), "runtime.start()")
        finally:
            await bounded(runtime.close(), "runtime.close()")
        error = refused.value
        assert server in str(error), error
        assert secret.user in str(error), error  # the URL it names, with the password hidden
        assert "***" in str(error), error
        shown = "\n".join(
            [str(error), repr(error), *traceback.format_exception(error), repr(settings)]
        )
        wrong.assert_absent(f"the error of a start refused by {server}", shown)
        secret.assert_absent(f"the error of a start refused by {server}", shown)

    wrong.assert_absent("the log records", records(caplog))
    secret.assert_absent("the log records", records(caplog))

    # The worker command: its log and its last words.
    worker = workers.start_worker(
        env={
            "AGNEXT_AMQP_URL": bad_amqp,
            "AGNEXT_REDIS_URL": good_redis,
            "AGNEXT_LOG_FORMAT": "json",
        }
    )
    assert await workers.wait_exit(worker, timeout=60) == 1, worker.log()
    assert "could not start" in worker.log(), worker.log()
    wrong.assert_absent("the worker's log", worker.log())
    secret.assert_absent("the worker's log", worker.log())

    # agnext-broker worker --check says what is wrong, without the passwords.
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "AGNEXT_AMQP_URL": bad_amqp,
        "AGNEXT_REDIS_URL": bad_redis_query,
        "AGNEXT_NAMESPACE": namespace,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agnext_broker", "worker", "--check"],
        env=env,
        cwd=Path(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 1, report
    assert "FAIL" in report, report
    wrong.assert_absent("worker --check", report)
    secret.assert_absent("worker --check", report)

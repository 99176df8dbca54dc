"""A worker and a client need only their namespace: a RabbitMQ user whose configure, write and
read permissions are ``^<ns>\\.`` in its vhost, and a Redis ACL user limited to the keys
``~<ns>:*`` and to the commands the runtime sends (its Lua scripts' included). Outside those
grants each server refuses, and the runtime says which user was refused.

The users are made with the very lines the README gives (``README_LINES`` below, rendered
with the README's names by ``test_the_readme_gives_the_lines_these_tests_run``).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import aiormq
import pytest
import redis.asyncio
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from redis.exceptions import NoPermissionError, ResponseError

from agnext_broker import AccessRefusedError, AgentId, TopicId, UndeliverableException
from agnext_broker.application.broker import BrokerAgentRuntime
from agnext_broker.application.broker._names import Names
from tests.integration.apps import (
    COUNTER_TYPE,
    FRAGILE_TOPIC,
    INCREMENTS_TOPIC,
    AppError,
    Explode,
    Increment,
    ReadCount,
    register_counter_and_fragile,
)
from tests.integration.test_broker_wire import ce_headers, doc_routing_key
from tests.integration.workers import (
    RuntimePool,
    bounded,
    broker_settings,
    state_document,
    wait_until,
)
from tests.servers import AnyRabbitMQ, AnyRedis, PrivateServerRequired, RabbitMQServer

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]

# -- the grants (the README's lines) -------------------------------------------------------------

RABBITMQ_USER = ("add_user", "{user}", "{password}")
RABBITMQ_PERMISSIONS = (
    "set_permissions", "-p", "{vhost}", "{user}",
    r"^{namespace}\.", r"^{namespace}\.", r"^{namespace}\.",
)  # fmt: skip
# Every command the runtime sends, directly or from its Lua scripts (agnext_broker/application/
# broker/_redis/): a script's commands are checked against the user's ACL like any other, and
# may touch only the keys it is given, which all match ~<ns>:*.
REDIS_COMMANDS = (
    "+ping", "+time", "+evalsha", "+script|load", "+multi", "+exec",
    "+get", "+set", "+del", "+mget", "+incr", "+pexpire", "+scan",
    "+hget", "+hset", "+hsetnx", "+hdel", "+hmget", "+hgetall",
    "+zadd", "+zrem", "+zcard", "+zscore", "+zrange", "+zrevrange",
    "+zrangebyscore", "+zrevrangebyscore", "+zremrangebyscore",
)  # fmt: skip
REDIS_ACL = (
    "ACL", "SETUSER", "{user}", "reset", "on", ">{password}", "~{namespace}:*", "resetchannels",
    *REDIS_COMMANDS,
)  # fmt: skip

# What the README shows them with.
README_NAMES = {"user": "agents", "password": "<password>", "vhost": "apps", "namespace": "agnext"}


def fill(template: tuple[str, ...], **names: str) -> list[str]:
    return [part.format(**names) for part in template]


def readme_lines(**names: str) -> list[str]:
    """The shell lines that make the users, for these names."""
    return [
        "rabbitmqctl " + shlex.join(fill(RABBITMQ_USER, **names)),
        "rabbitmqctl " + shlex.join(fill(RABBITMQ_PERMISSIONS, **names)),
        "redis-cli " + shlex.join(fill(REDIS_ACL, **names)),
    ]


def test_the_readme_gives_the_lines_these_tests_run() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    joined = re.sub(r" *\\\n *", " ", readme)  # shell lines continued with a backslash
    for line in readme_lines(**README_NAMES):
        assert line in joined.splitlines(), f"README.md does not give:\n{line}"


# -- users on the test's servers -----------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    password: str
    url: str


def with_user(url: str, user: str, password: str, path: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, path=parts.path if path is None else path))


def private(rabbitmq: AnyRabbitMQ) -> RabbitMQServer:
    if not isinstance(rabbitmq, RabbitMQServer):
        raise PrivateServerRequired("rabbitmqctl needs the private RabbitMQ the harness starts")
    return rabbitmq


@pytest.fixture(scope="module")
def vhost(rabbitmq: AnyRabbitMQ) -> Iterator[str]:
    """A vhost of the module's own (the harness's guest administers it); deleted with all its
    queues and exchanges at the end."""
    server = private(rabbitmq)
    name = f"apps-{uuid.uuid4().hex[:8]}"
    server.ctl("add_vhost", name)
    try:
        server.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        server.ctl("delete_vhost", name)


@pytest.fixture
def admin_amqp_url(rabbitmq: AnyRabbitMQ, vhost: str) -> str:
    return with_user(rabbitmq.amqp_url, "guest", "guest", "/" + quote(vhost, safe=""))


@pytest.fixture
def amqp_user(rabbitmq: AnyRabbitMQ, vhost: str, namespace: str) -> Iterator[User]:
    """A RabbitMQ user with permissions on ``^<ns>\\.`` only, made as the README says."""
    server = private(rabbitmq)
    names = {
        "user": f"{namespace}-agents",
        "password": secrets.token_hex(12),
        "vhost": vhost,
        "namespace": namespace,
    }
    server.ctl(*fill(RABBITMQ_USER, **names))
    try:
        server.ctl(*fill(RABBITMQ_PERMISSIONS, **names))
        url = with_user(rabbitmq.amqp_url, names["user"], names["password"], "/" + vhost)
        yield User(names["user"], names["password"], url)
    finally:
        server.ctl("delete_user", names["user"])


async def command(client: redis.asyncio.Redis, *args: str) -> Any:
    """A Redis command as a user would type it."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


@pytest.fixture
async def redis_user(
    redis_server: AnyRedis, redis_client: redis.asyncio.Redis, namespace: str
) -> AsyncIterator[User]:
    """A Redis ACL user with the keys ``~<ns>:*`` and the runtime's commands only."""
    names = {"user": f"{namespace}-agents", "password": secrets.token_hex(12)}
    assert await command(redis_client, *fill(REDIS_ACL, namespace=namespace, **names))
    try:
        url = with_user(redis_server.redis_url, names["user"], names["password"])
        yield User(names["user"], names["password"], url)
    finally:
        await redis_client.acl_deluser(names["user"])


async def refusals_of(redis_client: redis.asyncio.Redis, user: str) -> list[object]:
    """What Redis' ACL LOG recorded as refused to ``user``."""
    entries = await redis_client.acl_log()
    return [entry for entry in entries if entry.get("username") in (user, user.encode())]


def broker_refusals(rabbitmq: RabbitMQServer, user: str) -> list[str]:
    """The RabbitMQ node's log lines of refusals to ``user``."""
    log = rabbitmq.log_file.read_text(errors="replace")
    return [line for line in log.splitlines() if f"refused for user '{user}'" in line]


# -- what works ----------------------------------------------------------------------------------


async def test_a_worker_and_a_client_work_with_permissions_on_their_namespace_only(
    rabbitmq: AnyRabbitMQ,
    amqp_user: User,
    redis_user: User,
    redis_client: redis.asyncio.Redis,
    namespace: str,
) -> None:
    pool = RuntimePool(amqp_user.url, redis_user.url, namespace)
    try:
        worker = await pool.start(register_counter_and_fragile, handler_attempts=1)
        client = await pool.start()
        alice = AgentId(COUNTER_TYPE, "alice")

        # An RPC (its response comes back through <ns>.replies), an event, errors.
        assert await client.send_message(Increment(2), alice) == 2
        await client.publish_message(Increment(3), TopicId(INCREMENTS_TOPIC, "alice"))

        async def counted() -> bool:
            return bool(await client.send_message(ReadCount(), alice) == 5)

        await wait_until(counted, timeout=30, what="the event is counted")
        with pytest.raises(AppError, match="on purpose"):
            await client.send_message(Explode("on purpose"), alice)
        with pytest.raises(UndeliverableException):
            await client.send_message(ReadCount(), AgentId("nobody-hosts-it", "x"))

        # State: saved after each message, read and written through the agent's worker.
        document = await state_document(redis_client, namespace, COUNTER_TYPE, "alice")
        assert document is not None
        assert document["state"] == {"count": 5, "blobs": 0}
        assert await client.agent_save_state(alice) == {"count": 5, "blobs": 0}
        await client.agent_load_state(alice, {"count": 7, "blobs": 0})
        assert await client.send_message(ReadCount(), alice) == 7
        assert (await worker.save_state())[f"{COUNTER_TYPE}/alice"] == {"count": 7, "blobs": 0}

        # An event handler that fails goes to <ns>.dead-letter, which the user may read.
        await client.publish_message(Increment(1), TopicId(FRAGILE_TOPIC, "bob"))
        connection = await aio_pika.connect(amqp_user.url)
        async with connection:
            channel = await connection.channel()
            dead = await channel.get_queue(Names(namespace).dead_letter_queue, ensure=False)

            async def dead_letter() -> AbstractIncomingMessage | None:
                return await dead.get(no_ack=True, fail=False)

            letter = await wait_until(dead_letter, timeout=30, what="the event is dead-lettered")
            reason = (letter.headers or {}).get("x-agnext-reason")
            assert reason in ("handler_error", b"handler_error"), letter.headers

        # Asks the queues it consumes for their counts (passive declarations).
        await bounded(worker.stop_when_idle(), "worker.stop_when_idle()")
        pool.running.remove(worker)
        await bounded(worker.close(), "worker.close()")
    finally:
        await pool.close()

    # Nothing the runtime did was refused along the way (a refusal it got past would show here).
    assert await refusals_of(redis_client, redis_user.name) == []
    assert broker_refusals(private(rabbitmq), amqp_user.name) == []


async def test_a_caller_of_another_client_gets_its_response_through_the_replies_exchange(
    rabbitmq: AnyRabbitMQ,
    amqp_user: User,
    redis_user: User,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = RuntimePool(amqp_user.url, redis_user.url, namespace)
    try:
        await pool.start(register_counter_and_fragile)
        connection = await aio_pika.connect(amqp_user.url)
        async with connection:
            channel = await connection.channel()
            direct = await channel.get_exchange(f"{namespace}.direct", ensure=False)

            async def call(reply_queue: AbstractQueue) -> None:
                correlation = uuid.uuid4().hex
                headers = {
                    **ce_headers("Increment"),
                    "ce-agkind": "send",
                    "ce-agrecipient": f"{COUNTER_TYPE}/carol",
                    "ce-agcorrelation": correlation,
                }
                message = aio_pika.Message(
                    b'{"amount": 4}',
                    headers=headers,
                    content_type="application/json",
                    reply_to=reply_queue.name,
                    correlation_id=correlation,
                )
                await direct.publish(message, doc_routing_key("carol", COUNTER_TYPE))

            # Bound to <ns>.replies under its own name, as docs/wire-format.md says: answered.
            bound = await channel.declare_queue(f"{namespace}.reply.foreign", exclusive=True)
            await bound.bind(f"{namespace}.replies", routing_key=bound.name)
            await call(bound)

            async def response() -> AbstractIncomingMessage | None:
                return await bound.get(no_ack=True, fail=False)

            answer = await wait_until(response, timeout=30, what="the response")
            assert answer.body == b"4"
            assert (answer.headers or {}).get("ce-agkind") in ("response", b"response")

            # Not bound: the worker may not answer through the default exchange, and says so
            # once (the refused publish is not tried again and again).
            unbound = await channel.declare_queue(f"{namespace}.reply.unbound", exclusive=True)
            await call(unbound)

            async def warned() -> list[str]:
                return [
                    r.getMessage()
                    for r in caplog.records
                    if "could not send the response" in r.getMessage()
                ]

            await wait_until(warned, timeout=30, what="the worker says it could not answer")
            assert await unbound.get(no_ack=True, fail=False) is None
    finally:
        await pool.close()
    warnings = [
        r.getMessage() for r in caplog.records if "could not send the response" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert f"refused user '{amqp_user.name}'" in warnings[0], warnings
    assert "amq.default" in warnings[0], warnings
    assert "did not confirm" not in warnings[0], warnings  # refused at once, not timed out

    async def logged() -> list[str]:
        return broker_refusals(private(rabbitmq), amqp_user.name)

    assert len(await wait_until(logged, timeout=30, what="RabbitMQ logs the refusal")) == 1


async def test_worker_check_finds_that_a_worker_can_run_with_these_users(
    amqp_user: User, redis_user: User, namespace: str
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "AGNEXT_AMQP_URL": amqp_user.url,
        "AGNEXT_REDIS_URL": redis_user.url,
        "AGNEXT_NAMESPACE": namespace,
    }
    command = [sys.executable, "-m", "agnext_broker", "worker", "--check"]
    command += ["--app", "tests.integration.apps:register_counter"]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "the worker can run here" in report, report
    assert amqp_user.password not in report
    assert redis_user.password not in report


# -- what is refused -----------------------------------------------------------------------------


async def test_rabbitmq_refuses_the_user_outside_its_namespace(
    vhost: str,
    admin_amqp_url: str,
    amqp_user: User,
    redis_user: User,
    namespace: str,
) -> None:
    outside = f"other-{namespace}.jobs"
    admin = await aio_pika.connect(admin_amqp_url)
    async with admin:  # another application's queue, with a message in it
        channel = await admin.channel()
        theirs = await channel.declare_queue(outside)
        await channel.default_exchange.publish(aio_pika.Message(b"theirs"), outside)

        connection = await aio_pika.connect(amqp_user.url)
        async with connection:

            def refused(what: str) -> str:
                return f"access to {what} in vhost '{vhost}' refused for user '{amqp_user.name}'"

            with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as declare:
                await (await connection.channel()).declare_queue(f"other-{namespace}.mine")
            assert refused(f"queue 'other-{namespace}.mine'") in str(declare.value)

            mine = await (await connection.channel()).declare_queue(f"{namespace}.mine")
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as bind:
                await mine.bind("amq.topic", "#")
            assert refused("exchange 'amq.topic'") in str(bind.value)

            reader = await connection.channel()
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as read:
                await (await reader.get_queue(outside, ensure=False)).get(no_ack=True)
            assert refused(f"queue '{outside}'") in str(read.value)

            # The default exchange (amq.default) reaches every queue of the vhost by name: the
            # user may not publish to it (which is why responses go through <ns>.replies).
            publisher = await connection.channel(publisher_confirms=True)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as publish:
                await publisher.default_exchange.publish(aio_pika.Message(b"x"), outside)
            assert refused("exchange 'amq.default'") in str(publish.value)

        # Their message is still there, untouched.
        assert (await theirs.get(no_ack=True)).body == b"theirs"
        await theirs.delete()

    # A runtime of another namespace with this user fails to start, naming the user and what
    # it was refused; the password is not in the message.
    other = f"other-{namespace}"
    settings = broker_settings(amqp_user.url, redis_user.url, other, connect_timeout=5)
    runtime = BrokerAgentRuntime(settings)
    try:
        with pytest.raises(AccessRefusedError) as start:
            await bounded(runtime.start(), "runtime.start()")
    finally:
        await bounded(runtime.close(), "runtime.close()")
    message = str(start.value)
    assert isinstance(start.value, PermissionError)
    assert f"refused user '{amqp_user.name}'" in message, message
    assert f"exchange '{other}.events'" in message, message
    assert amqp_user.password not in message


async def test_redis_refuses_the_user_outside_its_keys_and_commands(
    redis_user: User, redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    await redis_client.set(f"other-{namespace}:secret", "theirs")
    limited = redis.asyncio.Redis.from_url(redis_user.url, decode_responses=True)
    try:
        await limited.set(f"{namespace}:mine", "1")  # its own keys, with a granted command
        assert await limited.get(f"{namespace}:mine") == "1"

        theirs = f"other-{namespace}:secret"
        with pytest.raises(NoPermissionError, match="no permissions to access one of the keys"):
            await limited.get(theirs)
        with pytest.raises(NoPermissionError, match="no permissions to access one of the keys"):
            await limited.set(theirs, "overwritten")
        # A script gets no further: its commands are checked against the same ACL.
        sha = await limited.script_load("return redis.call('GET', KEYS[1])")
        with pytest.raises(NoPermissionError, match="no permissions to access one of the keys"):
            await limited.evalsha(sha, 1, theirs)
        sneaky = await limited.script_load(f"return redis.call('GET', '{theirs}')")
        with pytest.raises(ResponseError, match="can't access at least one of the keys"):
            await limited.evalsha(sneaky, 0)
        assert await limited.evalsha(sha, 1, f"{namespace}:mine") == "1"

        for refused, name in (
            (("FLUSHALL",), "flushall"),
            (("KEYS", "*"), "keys"),
            (("CONFIG", "GET", "maxmemory"), "config|get"),
            (("EVAL", "return 1", "0"), "eval"),
            (("ACL", "LIST"), "acl|list"),
        ):
            with pytest.raises(NoPermissionError, match=re.escape(f"'{name}' command")):
                await command(limited, *refused)
    finally:
        await limited.aclose()
    assert await redis_client.get(f"other-{namespace}:secret") == b"theirs"
    await redis_client.delete(f"other-{namespace}:secret")

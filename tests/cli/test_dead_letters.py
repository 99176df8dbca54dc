"""``agnext-broker inspect dead-letters`` and ``agnext-broker dead-letters replay | purge``, run as
a user runs them, against a worker whose handler fails until it is "fixed" (a Redis key): the
dead letters show why they died, stay where they are when looked at, reach their agents once
sent back after the fix (each applied once), and are gone when purged."""

from __future__ import annotations

import json
from typing import Any

import aio_pika
import pytest
import redis.asyncio

from tests.cli.apps import JOBS_TOPIC, PICKY_TYPE, fixed_flag
from tests.cli.users import User
from tests.integration.workers import (
    Process,
    WorkerPool,
    forget_namespace,
    wait_until,
    workers_fixture,  # noqa: F401
)
from tests.servers import AmqpCleanup, AnyRabbitMQ

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

PICKY_APP = "tests.cli.apps:register_picky"
KEYS = ("k1", "k2", "k3")


@pytest.fixture
async def picky_worker(
    workers: WorkerPool, redis_client: redis.asyncio.Redis, amqp_cleanup: AmqpCleanup
) -> Process:
    forget_namespace(amqp_cleanup, [PICKY_TYPE])
    worker = workers.start_worker(PICKY_APP, env={"AGNEXT_HANDLER_ATTEMPTS": "1"})
    await workers.wait_registered(redis_client, worker)
    return worker


async def publish_job(user: User, key: str, n: int, message_type: str = "Job") -> None:
    await user.ok("publish", f"{JOBS_TOPIC}/{key}", message_type, json.dumps({"n": n}))


async def dead_letters(user: User, count: int, *args: str) -> dict[str, Any]:
    """``inspect dead-letters --json`` once the queue holds ``count`` messages."""

    async def holding() -> dict[str, Any] | None:
        found: dict[str, Any] = await user.json("inspect", "dead-letters", *args)
        return found if found["total"] == count else None

    return await wait_until(holding, timeout=60, what=f"{count} dead letters", period=0.2)


async def done_jobs(redis_client: redis.asyncio.Redis, user: User, key: str) -> list[int]:
    document = await redis_client.get(f"{user.namespace}:agent:{{{PICKY_TYPE}/{key}}}")
    return [] if document is None else list(json.loads(document)["state"]["done"])


async def test_replay_after_the_fix(
    user: User, picky_worker: Process, redis_client: redis.asyncio.Redis
) -> None:
    for n, key in enumerate(KEYS, start=1):
        await publish_job(user, key, n)
    found = await dead_letters(user, len(KEYS))
    letters = found["letters"]
    assert found["queue"] == f"{user.namespace}.dead-letter"
    assert sorted(d["target"] for d in letters) == [f"{JOBS_TOPIC}/{k}" for k in KEYS]
    for letter in letters:
        assert letter["reason"] == "handler_error"
        assert letter["type"] == "Job"
        assert letter["kind"] == "publish"
        assert "not fixed yet" in letter["detail"]
        assert letter["queue"].startswith(f"{user.namespace}.agent.{PICKY_TYPE}.")
        assert letter["message_id"]
    table = await user.ok("inspect", "dead-letters")
    assert "handler_error" in table.stdout
    assert "not fixed yet" in table.stdout
    # Looking leaves them there, and a reason filters.
    assert (await user.json("inspect", "dead-letters"))["total"] == len(KEYS)
    other = await user.json("inspect", "dead-letters", "--reason", "unknown_type")
    assert other == {"queue": found["queue"], "total": len(KEYS), "letters": []}
    assert len((await user.json("inspect", "dead-letters", "--limit", "2"))["letters"]) == 2

    ran = await user.ok("dead-letters", "replay", "--reason", "unknown_type")
    assert ran.stdout.strip() == (
        f"replayed 0 of {len(KEYS)} dead letters examined; {len(KEYS)} left in {found['queue']}"
    )

    await redis_client.set(fixed_flag(user.namespace), "1")
    first = await user.json("dead-letters", "replay", "--limit", "1")
    assert first["replayed"] == 1
    assert first["unroutable"] == []

    async def handled(count: int) -> bool:
        return sum([len(await done_jobs(redis_client, user, k)) for k in KEYS]) == count

    await wait_until(lambda: handled(1), timeout=30, what="one job is handled after the replay")
    ran = await user.ok("dead-letters", "replay")
    assert ran.stdout.strip() == (
        f"replayed {len(KEYS) - 1} of {len(KEYS) - 1} dead letters examined; 0 left in "
        f"{found['queue']}"
    )
    await wait_until(lambda: handled(len(KEYS)), timeout=30, what="every job is handled")
    for n, key in enumerate(KEYS, start=1):
        assert await done_jobs(redis_client, user, key) == [n]  # each applied once
    assert (await user.json("inspect", "dead-letters"))["total"] == 0
    state = await user.json("inspect", "state", PICKY_TYPE, "k2")
    assert state["state"] == {"done": [2]}


async def test_a_dead_letter_replayed_twice_is_applied_once(
    user: User, picky_worker: Process, redis_client: redis.asyncio.Redis, rabbitmq: AnyRabbitMQ
) -> None:
    """Two copies of one dead letter, as a replay cut between the broker's confirm and the
    acknowledgement leaves it: both sent back, the agent applies the message once."""
    await publish_job(user, "k1", 7)
    await dead_letters(user, 1)
    connection = await aio_pika.connect(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.get_queue(f"{user.namespace}.dead-letter")
        message = await queue.get(no_ack=False, timeout=10)
        dlx = await channel.get_exchange(f"{user.namespace}.dlx")
        for _ in range(2):
            copy = aio_pika.Message(
                message.body, headers=message.headers, content_type=message.content_type
            )
            await dlx.publish(copy, routing_key="")
        await message.ack()
    await dead_letters(user, 2)

    await redis_client.set(fixed_flag(user.namespace), "1")
    assert (await user.json("dead-letters", "replay"))["replayed"] == 2
    # A later job to the same agent is handled after both copies (one partition, in order).
    await publish_job(user, "k1", 8)

    async def both_handled() -> bool:
        return len(await done_jobs(redis_client, user, "k1")) >= 2

    await wait_until(both_handled, timeout=30, what="the later job is handled")
    assert await done_jobs(redis_client, user, "k1") == [7, 8]
    assert (await user.json("inspect", "dead-letters"))["total"] == 0


async def test_purge(user: User, picky_worker: Process) -> None:
    await publish_job(user, "k1", 1)
    await publish_job(user, "k2", 2, message_type="NoSuchMessage")  # unknown_type
    await dead_letters(user, 2)
    reasons = {d["reason"] for d in (await user.json("inspect", "dead-letters"))["letters"]}
    assert reasons == {"handler_error", "unknown_type"}

    refused = await user.run("dead-letters", "purge")  # no answer (no terminal): not deleted
    assert refused.code == 1, str(refused)
    assert "Delete all 2 dead letters" in refused.stderr
    assert (await user.json("inspect", "dead-letters"))["total"] == 2

    ran = await user.ok("dead-letters", "purge", "--reason", "unknown_type", "--yes")
    assert ran.stdout.strip() == f"deleted 1 dead letters from {user.namespace}.dead-letter"
    (left,) = (await user.json("inspect", "dead-letters"))["letters"]
    assert left["reason"] == "handler_error"

    ran = await user.ok("dead-letters", "purge", "--yes")
    assert ran.stdout.strip() == f"deleted 1 dead letters from {user.namespace}.dead-letter"
    assert (await user.json("inspect", "dead-letters"))["total"] == 0
    ran = await user.ok("dead-letters", "purge", "--yes")
    assert ran.stdout.strip() == f"{user.namespace}.dead-letter is empty"


async def test_a_namespace_without_workers_has_no_dead_letter_queue(user: User) -> None:
    line = await user.fails("inspect", "dead-letters")
    assert f"{user.namespace}.dead-letter" in line
    line = await user.fails("dead-letters", "replay")
    assert f"{user.namespace}.dead-letter" in line

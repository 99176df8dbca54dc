"""``agnext-broker inspect``, run as a user runs it, against a worker of the tally example: what it
shows is what the worker registered and the agents saved, and no password is ever printed."""

from __future__ import annotations

import json

import pytest
import redis.asyncio

from tests.cli.commands import assert_one_line_error
from tests.cli.users import User, with_password
from tests.integration.workers import (
    PARTITIONS,
    WORKER_EXPIRY,
    Process,
    WorkerPool,
    forget_namespace,
    wait_until,
    workers_fixture,  # noqa: F401
)
from tests.servers import AmqpCleanup

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

TALLY_APP = "agnext_broker.examples.tally:register"
TALLY_TYPES = ("coordinator", "tallier", "reporter")
KEYS = ("alpha", "beta")
ITEMS = 3  # amounts 1, 2, 3: each tallier's total is 6


@pytest.fixture
async def tally_worker(
    workers: WorkerPool,
    redis_client: redis.asyncio.Redis,
    amqp_cleanup: AmqpCleanup,
    user: User,
) -> Process:
    """A worker of the tally example that has handled one batch."""
    forget_namespace(amqp_cleanup, TALLY_TYPES)
    worker = workers.start_worker(TALLY_APP)
    await workers.wait_registered(redis_client, worker)
    batch = json.dumps({"keys": list(KEYS), "items_per_key": ITEMS})
    ran = await user.ok("send", "coordinator/default", "RunBatch", batch)
    assert json.loads(ran.stdout)["totals"] == {key: 6 for key in KEYS}
    return worker


async def test_workers_types_partitions_and_subscriptions(
    user: User, tally_worker: Process
) -> None:
    worker_id = tally_worker.worker_id

    table = await user.ok("inspect", "workers")
    assert worker_id in table.stdout
    assert "tallier" in table.stdout
    (worker,) = await user.json("inspect", "workers")
    assert worker["worker_id"] == worker_id
    assert worker["pid"] == tally_worker.pid
    assert sorted(worker["agent_types"]) == sorted(TALLY_TYPES)
    assert 0 < worker["expires_in_s"] <= WORKER_EXPIRY
    assert worker["draining"] is False

    types = {t["agent_type"]: t for t in await user.json("inspect", "types")}
    assert set(types) == set(TALLY_TYPES)
    assert types["tallier"]["partitions"] == PARTITIONS
    assert types["tallier"]["hosts"] == [worker_id]
    assert types["tallier"]["message_types"] == ["WorkItem"]
    assert types["tallier"]["subscriptions"] == 2  # topic "work" and the "tallier:" prefix

    async def all_consumed() -> list[dict[str, object]] | None:
        found: list[dict[str, object]] = await user.json("inspect", "partitions", "tallier")
        return found if all(p["consumers"] == 1 for p in found) else None

    partitions = await wait_until(all_consumed, timeout=30, what="every partition is consumed")
    assert [p["partition"] for p in partitions] == list(range(PARTITIONS))
    assert {p["owner"] for p in partitions} == {worker_id}
    assert all(p["owner_live"] and p["ready"] == 0 for p in partitions)
    everything = await user.json("inspect", "partitions")
    assert len(everything) == PARTITIONS * len(TALLY_TYPES)
    assert "tallier" in (await user.ok("inspect", "partitions")).stdout

    subscriptions = await user.json("inspect", "subscriptions")
    assert subscriptions["version"] >= 1
    shared = {(s["agent_type"], s["topic"], s["kind"]) for s in subscriptions["subscriptions"]}
    assert ("tallier", "work", "type") in shared
    assert ("reporter", "tally.results", "type") in shared
    assert ("tallier", "tallier:*", "type_prefix") in shared


async def test_agents_and_their_state(user: User, tally_worker: Process) -> None:
    agents = await user.json("inspect", "agents", "tallier")
    assert agents["total"] == len(KEYS)
    assert [a["key"] for a in agents["agents"]] == sorted(KEYS)
    assert all(a["version"] == ITEMS for a in agents["agents"])
    assert all(a["owner"] == tally_worker.worker_id for a in agents["agents"])
    table = await user.ok("inspect", "agents", "tallier")
    assert "alpha" in table.stdout
    assert "beta" in table.stdout
    limited = await user.json("inspect", "agents", "tallier", "--limit", "1")
    assert limited["total"] == len(KEYS)
    assert len(limited["agents"]) == 1

    state = await user.json("inspect", "state", "tallier", "alpha")
    assert state["agent"] == "tallier/alpha"
    assert state["state"] == {"total": 6, "count": ITEMS}
    assert state["version"] == ITEMS
    assert state["applied"] == ITEMS
    assert state["state_key"] == f"{user.namespace}:agent:{{tallier/alpha}}"
    assert state["last_applied_s"] is not None
    assert state["last_applied_s"] >= 0

    shown = await user.ok("inspect", "state", "tallier", "alpha")
    assert '"total": 6' in shown.stdout
    assert f"{user.namespace}:agent:{{tallier/alpha}}" in shown.stdout


async def test_bad_names_fail_in_one_line(user: User, tally_worker: Process) -> None:
    line = await user.fails("inspect", "agents", "no-such-type")
    assert "no-such-type" in line
    assert "tallier" in line
    line = await user.fails("inspect", "state", "no-such-type", "alpha")
    assert "no-such-type" in line
    line = await user.fails("inspect", "state", "tallier", "nobody")
    assert "tallier/nobody" in line
    line = await user.fails("inspect", "partitions", "no-such-type")
    assert "no-such-type" in line


async def test_flags_instead_of_the_environment(user: User, tally_worker: Process) -> None:
    flags = ["--amqp-url", user.amqp_url, "--redis-url", user.redis_url]
    flags += ["--namespace", user.namespace]
    ran = await user.run("inspect", "workers", *flags, env={"AGNEXT_NAMESPACE": "elsewhere"})
    assert ran.code == 0, str(ran)
    assert tally_worker.worker_id in ran.stdout


async def test_a_refused_password_is_one_line_without_it(user: User, tally_worker: Process) -> None:
    wrong = "wrong-pw-5d41402abc4b2a76"
    user.secrets = [*user.secrets, wrong]
    env = {"AGNEXT_REDIS_URL": with_password(user.redis_url, wrong)}
    ran = await user.run("inspect", "workers", env=env)
    assert_one_line_error(ran, "Redis", "refused")
    env = {"AGNEXT_AMQP_URL": with_password(user.amqp_url, wrong)}
    ran = await user.run("inspect", "dead-letters", env=env)
    assert_one_line_error(ran, "RabbitMQ", "refused")

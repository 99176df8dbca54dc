"""``agnext-broker worker``, ``run``, ``demo``, ``send`` and ``publish``, run as subprocesses
against the test's private RabbitMQ and Redis, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from agnext_broker.application.broker import BrokerSettings
from agnext_broker.application.broker._settings import variable
from agnext_broker.cli import cli
from tests.cli.commands import agnext, assert_one_line_error
from tests.integration.workers import (
    HEARTBEAT_INTERVAL,
    WORKER_EXPIRY,
    WorkerPool,
    forget_namespace,
    live_workers,
    wait_until,
)
from tests.servers import AmqpCleanup, AnyRabbitMQ, AnyRedis, free_port

pytestmark = pytest.mark.integration

TALLY = "agnext_broker.examples.tally:register"
TALLY_TYPES = ("coordinator", "tallier", "reporter")


@pytest.fixture
async def pool(
    rabbitmq: AnyRabbitMQ,
    redis_server: AnyRedis,
    namespace: str,
    redis_client: redis.asyncio.Redis,
    amqp_cleanup: AmqpCleanup,
    tmp_path: Path,
) -> AsyncIterator[WorkerPool]:
    forget_namespace(amqp_cleanup, TALLY_TYPES)
    workers = WorkerPool(rabbitmq.amqp_url, redis_server.redis_url, namespace, tmp_path)
    try:
        yield workers
    finally:
        workers.close()
        print(workers.logs(60))


def servers(pool: WorkerPool, **extra: str) -> dict[str, str]:
    return {
        "AGNEXT_AMQP_URL": pool.amqp_url,
        "AGNEXT_REDIS_URL": pool.redis_url,
        "AGNEXT_NAMESPACE": pool.namespace,
        "AGNEXT_PARTITIONS": str(pool.partitions),
        **extra,
    }


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_version_and_help_name_every_setting_with_its_variable() -> None:
    version = await agnext("--version")
    assert version.code == 0, version
    assert version.stdout.startswith("agnext-broker, version "), version
    shown = await agnext("worker", "--help", env={"COLUMNS": "200"})
    assert shown.code == 0, shown
    for name in BrokerSettings.model_fields:
        assert f"--{name.replace('_', '-')}" in shown.stdout, name
        assert variable(name) in shown.stdout, name
    worker = cli.commands["worker"]
    flags = {opt for param in worker.params for opt in param.opts}
    assert {"--app", "--check", "--log-format", "--log-level"} <= flags


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["worker", "--app", "no_such_module:register"], {}, ["cannot import 'no_such_module'"]),
        (["worker", "--app", "agnext_broker.examples.tally"], {}, ["expected module:function"]),
        (["worker", "--app", "agnext_broker.examples.tally:WORK_TOPIC"], {}, ["not a function"]),
        (["worker", "--app", "agnext_broker.examples.tally:nothing"], {}, ["no attribute"]),
        (["worker", "--app", TALLY, "--partitions", "3"], {}, ["--partitions 3", "power of two"]),
        (["worker", "--app", TALLY, "--prefetch", "many"], {}, ["--prefetch"]),
        (["worker", "--app", TALLY], {"AGNEXT_PREFETCH": "abc"}, ["AGNEXT_PREFETCH='abc'"]),
        (["worker", "--app", TALLY, "--namespace", "bad name!"], {}, ["invalid namespace"]),
        (
            ["worker", "--app", TALLY],
            {"AGNEXT_REDIS_URL_FILE": "/nonexistent/redis-url"},
            ["AGNEXT_REDIS_URL_FILE='/nonexistent/redis-url'", "cannot read it"],
        ),
        (["worker"], {}, ["--app"]),
        (["send", "counter", "Ping", "{}"], {}, ["TYPE/KEY"]),
        (["send", "counter/a", "Ping", "{not json"], {}, ["not JSON"]),
        (
            ["send", "coordinator/default", "RunBatch", '{"keys": 3}', "--app", TALLY],
            {},
            ["does not fit RunBatch", "keys", "items_per_key"],
        ),
        (["publish", "work", "WorkItem", "{}"], {}, ["TOPIC_TYPE/SOURCE"]),
    ],
)
async def test_bad_input_is_one_line_and_a_non_zero_exit(
    args: list[str], env: dict[str, str], expected: list[str]
) -> None:
    result = await agnext(*args, env=env)
    assert_one_line_error(result, *expected)


async def test_check_reports_what_a_worker_would_find(pool: WorkerPool) -> None:
    result = await agnext("worker", "--check", "--app", TALLY, env=servers(pool))
    assert result.code == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok   Redis"), result
    assert lines[1].startswith("ok   RabbitMQ"), result
    assert f"{pool.namespace}.dead-letter" in lines[1]
    assert "registers agent types: coordinator, reporter, tallier" in lines[2]
    assert lines[-1] == "the worker can run here"


async def test_check_names_what_is_wrong(pool: WorkerPool) -> None:
    wrong_password = pool.amqp_url.replace("guest:guest@", "guest:not-the-password@")
    refused = await agnext("worker", "--check", env=servers(pool, AGNEXT_AMQP_URL=wrong_password))
    assert refused.code == 1, refused
    assert "FAIL RabbitMQ" in refused.stdout
    assert "refused the login of user 'guest'" in (refused.stdout)
    assert "not-the-password" not in refused.stdout + refused.stderr
    vhost = await agnext(
        "worker", "--check", env=servers(pool, AGNEXT_AMQP_URL=pool.amqp_url + "no-such-vhost")
    )
    assert vhost.code == 1, vhost
    assert "vhost 'no-such-vhost'" in vhost.stdout, vhost
    closed = f"redis://127.0.0.1:{free_port()}/0"
    unreachable = await agnext(
        "worker",
        "--check",
        "--connect-timeout",
        "1",
        env=servers(pool, AGNEXT_REDIS_URL=closed),
    )
    assert unreachable.code == 1, unreachable
    assert "FAIL Redis" in unreachable.stdout
    assert "cannot be reached" in unreachable.stdout


async def test_workers_serve_demo_send_and_publish_with_structured_logs(
    pool: WorkerPool, redis_client: redis.asyncio.Redis
) -> None:
    env = servers(pool, AGNEXT_LOG_FORMAT="json", AGNEXT_LOG_LEVEL="debug")
    first = pool.start_worker(TALLY, name="first", env=env)
    second = pool.start_worker(TALLY, name="second", env=env)
    await pool.wait_registered(redis_client, first, second)

    demo = await agnext("demo", "--keys", "alpha,beta", "--items", "10", env=servers(pool))
    assert demo.code == 0, demo
    assert "20 item(s)" in demo.stdout, demo

    published = await agnext(
        "publish", "work/alpha", "WorkItem", '{"item_id": 99, "key": "alpha", "amount": 1000}',
        env=servers(pool),
    )  # fmt: skip
    assert published.code == 0, published
    assert "published to work/alpha" in published.stdout, published

    async def counted() -> bool:
        report = await agnext("send", "reporter/default", "GetReport", "{}", env=servers(pool))
        assert report.code == 0, report
        return bool(json.loads(report.stdout)["items"] == 21)

    await wait_until(counted, timeout=30, what="the published item is tallied")

    logs = {worker.name: json_lines(worker.log()) for worker in (first, second)}
    for worker in (first, second):
        assert all(line["worker_id"] == worker.worker_id for line in logs[worker.name])
    handled = [
        line
        for lines in logs.values()
        for line in lines
        if str(line["message"]).startswith("item 99 of alpha tallied")
    ]
    assert len(handled) == 1, handled
    assert handled[0]["agent_id"] == "tallier/alpha"
    assert handled[0]["message_id"]

    # A worker that vanishes: the other takes its partitions over once its heartbeat expires.
    pool.kill(first)

    async def taken_over() -> bool:
        return any(
            "took over" in str(line["message"]) and line.get("from") == first.worker_id
            for line in json_lines(second.log())
        )

    await wait_until(
        taken_over, timeout=WORKER_EXPIRY + 20 * HEARTBEAT_INTERVAL, what="a takeover log line"
    )
    assert await pool.terminate(second) == 0
    assert json_lines(second.log())[-1]["message"] == "worker stopped"


async def test_run_starts_n_workers_and_one_signal_drains_them_all(
    pool: WorkerPool, redis_client: redis.asyncio.Redis
) -> None:
    run = pool._spawn(
        "run", ["-m", "agnext_broker", "run", "--app", TALLY, "--workers", "3", "--worker-id",
                "local"],
        servers(pool, AGNEXT_LOG_FORMAT="json"),
    )  # fmt: skip
    ids = {f"local-{i}" for i in range(3)}

    async def all_live() -> bool:
        assert run.alive, pool.logs()
        return ids <= await live_workers(redis_client, pool.namespace)

    await wait_until(all_live, timeout=60, what="the three workers are live", details=pool.logs)
    demo = await agnext("demo", "--items", "5", env=servers(pool))
    assert demo.code == 0, demo
    assert "15 item(s)" in demo.stdout, demo

    os.kill(run.pid, signal.SIGINT)  # as Ctrl-C would
    assert await pool.wait_exit(run, timeout=90) == 0
    worker_lines = [line for line in run.log().splitlines() if line.startswith("{")]
    stopped = [
        line
        for line in json_lines("\n".join(worker_lines))
        if line.get("message") == "worker stopped"
    ]
    assert {line["worker_id"] for line in stopped} == ids
    assert not ids & await live_workers(redis_client, pool.namespace)

"""Fixtures of the conformance suite.

Tests take ``runtime`` (a started runtime with default settings) or ``runtime_factory`` (an async
callable that makes and starts more). Both are parametrized over the runtimes under test, so the
same tests run against each:

- ``standalone``: the in-memory runtime;
- ``broker``: the broker runtime on the session's private RabbitMQ and Redis, one runtime per
  test namespace that both hosts the agents and sends to them;
- ``broker-3``: three worker processes host the agents (``cluster.py``); the test process only
  sends, publishes and collects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agnext_broker import AgentRuntime, SingleThreadedAgentRuntime
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings

from .cluster import COMMANDS, ClusterRuntime, cluster_settings

RuntimeFactory = Callable[..., Awaitable[AgentRuntime]]

RUNTIMES = [
    "standalone",
    "broker",
    # about a minute and a half for the whole suite: `-m "not slow"` leaves it out
    pytest.param("broker-3", marks=pytest.mark.slow, id="broker-3"),
]
CLUSTER_WORKERS = ["w1", "w2", "w3"]


def _make_standalone(**kwargs: Any) -> AgentRuntime:
    runtime = SingleThreadedAgentRuntime(**kwargs)
    runtime.start()
    return runtime


async def _make_broker(request: pytest.FixtureRequest, **kwargs: Any) -> AgentRuntime:
    rabbitmq = request.getfixturevalue("rabbitmq")
    redis_server = request.getfixturevalue("redis_server")
    namespace = "c" + uuid.uuid4().hex[:10]
    settings = BrokerSettings(
        amqp_url=rabbitmq.amqp_url,
        redis_url=redis_server.redis_url,
        namespace=namespace,
        partitions=2,
        heartbeat_interval=0.5,
        worker_expiry=2.0,
        rpc_timeout=30.0,
        drain_timeout=2.0,
    )
    runtime = BrokerAgentRuntime(settings, **kwargs)
    await runtime.start()
    return runtime


@pytest.fixture(scope="session")
def cluster(rabbitmq: Any, redis_server: Any) -> Iterator[list[str]]:
    """Three worker processes serving the broker-3 runtime, for the whole session."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.conformance.cluster",
                rabbitmq.amqp_url,
                redis_server.redis_url,
                name,
            ],
            cwd=root,
            env=env,
        )
        for name in CLUSTER_WORKERS
    ]
    try:
        yield CLUSTER_WORKERS
    finally:
        control = redis.Redis.from_url(redis_server.redis_url)
        for name in CLUSTER_WORKERS:
            control.rpush(COMMANDS.format(name=name), json.dumps({"op": "exit"}))
        control.close()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _make_cluster(request: pytest.FixtureRequest, **kwargs: Any) -> AgentRuntime:
    workers = request.getfixturevalue("cluster")
    rabbitmq = request.getfixturevalue("rabbitmq")
    redis_server = request.getfixturevalue("redis_server")
    settings = cluster_settings(
        rabbitmq.amqp_url, redis_server.redis_url, "k" + uuid.uuid4().hex[:10]
    )
    runtime = ClusterRuntime(settings, redis_server.redis_url, workers, **kwargs)
    await runtime.start()
    return runtime


async def _shut_down(runtime: AgentRuntime) -> None:
    """Stop the runtime if it still runs (raising what an event handler raised), then close it."""
    try:
        # The runtimes have no public "is running" flag.
        if getattr(runtime, "_running", False) or getattr(runtime, "_started", None):
            await runtime.stop()  # type: ignore[attr-defined]
    finally:
        await runtime.close()  # type: ignore[attr-defined]


@pytest.fixture(params=RUNTIMES)
async def runtime_factory(request: pytest.FixtureRequest) -> AsyncIterator[RuntimeFactory]:
    """An async callable ``make(**kwargs)`` returning a started runtime; all are closed after."""
    kind: str = request.param
    created: list[AgentRuntime] = []

    async def make(**kwargs: Any) -> AgentRuntime:
        if kind == "standalone":
            runtime = _make_standalone(**kwargs)
        elif kind == "broker":
            runtime = await _make_broker(request, **kwargs)
        elif kind == "broker-3":
            runtime = await _make_cluster(request, **kwargs)
        else:  # pragma: no cover - a runtime added to RUNTIMES must be built here
            raise ValueError(f"unknown runtime {kind!r}")
        created.append(runtime)
        return runtime

    yield make

    errors: list[BaseException] = []
    for runtime in reversed(created):
        try:
            await _shut_down(runtime)
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
async def runtime(runtime_factory: RuntimeFactory) -> AgentRuntime:
    """A started runtime with default settings."""
    return await runtime_factory()

"""A worker's health port: /healthz while its event loop answers, /readyz while it can work (and
why not), /metrics in Prometheus' format with what the runtime counts."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request

import pytest

from agnext_broker import AgentId, TopicId
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Explode,
    Increment,
    Nap,
    register_counter,
)
from tests.integration.workers import (
    PARTITIONS,
    RuntimePool,
    runtimes_fixture,  # noqa: F401
    wait_until,
)
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def aget(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, port, path)


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of ``name`` with exactly ``labels`` in the exposition text."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    raise AssertionError(f"no sample {name}{{{wanted}}} in:\n{metrics}")


async def test_health_readiness_and_metrics_of_a_working_worker(runtimes: RuntimePool) -> None:
    port, client_port = free_port(), free_port()
    worker = await runtimes.start(register_counter, health_port=port, health_host="127.0.0.1")
    client = await runtimes.start(health_port=client_port, health_host="127.0.0.1")
    agent = AgentId(COUNTER_TYPE, "metered")
    for _ in range(3):
        await client.send_message(Increment(1), agent)
    await client.publish_message(Increment(1), TopicId(INCREMENTS_TOPIC, "metered"))
    with pytest.raises(Exception, match="boom"):
        await client.send_message(Explode("boom"), agent)

    assert await aget(port, "/healthz") == (200, "ok\n")
    status, body = await aget(port, "/readyz")
    assert status == 200, body
    ready = json.loads(body)
    assert ready["ready"] is True
    assert ready["partitions"] == {COUNTER_TYPE: PARTITIONS}
    assert (ready["rabbitmq"], ready["redis"], ready["draining"]) == (
        "connected",
        "reachable",
        False,
    )

    async def counted() -> str | None:
        _, text = await aget(port, "/metrics")
        counts = sample(
            text, "agnext_messages_handled_total", agent_type=COUNTER_TYPE, outcome="ok"
        )
        return text if counts == 4 else None  # the event is handled after its publish returned

    metrics = await wait_until(counted, timeout=20, what="four messages counted as ok")
    assert (
        sample(metrics, "agnext_messages_handled_total", agent_type=COUNTER_TYPE, outcome="error")
        == 1
    )
    assert sample(metrics, "agnext_handler_duration_seconds_count", agent_type=COUNTER_TYPE) == 5
    assert sample(metrics, "agnext_owned_partitions", agent_type=COUNTER_TYPE) == PARTITIONS
    assert sample(metrics, "agnext_state_writes_total", outcome="saved") >= 5
    assert sample(metrics, "agnext_deliveries_in_flight") == 0
    # The calling side times its RPCs.
    _, client_metrics = await aget(client_port, "/metrics")
    assert sample(client_metrics, "agnext_rpc_duration_seconds_count", outcome="ok") == 3
    assert sample(client_metrics, "agnext_rpc_duration_seconds_count", outcome="error") == 1
    assert "guest" not in metrics + client_metrics + body  # no credentials anywhere
    assert (await aget(port, "/nothing-here"))[0] == 404
    del worker


async def test_readiness_drops_while_redis_is_away_and_while_draining(
    runtimes: RuntimePool, private_redis_server: RedisServer
) -> None:
    port = free_port()
    worker = await runtimes.start(
        register_counter,
        health_port=port,
        health_host="127.0.0.1",
        worker_expiry=30.0,
        drain_timeout=30.0,
    )
    client = await runtimes.start(rpc_timeout=60.0, worker_expiry=30.0)
    agent = AgentId(COUNTER_TYPE, "sleepy")
    assert await client.send_message(Increment(1), agent) == 1
    assert (await aget(port, "/readyz"))[0] == 200

    await private_redis_server.astop()
    try:

        async def not_ready() -> str | None:
            status, body = await aget(port, "/readyz")
            return body if status == 503 else None

        body = await wait_until(not_ready, timeout=15, what="readyz says Redis is away")
        assert json.loads(body)["redis"] == "not reachable"
        assert await aget(port, "/healthz") == (200, "ok\n")  # alive all the same
    finally:
        await private_redis_server.astart()

    async def ready() -> bool:
        return (await aget(port, "/readyz"))[0] == 200

    await wait_until(ready, timeout=15, what="ready again once Redis is back")

    # While it drains (a handler still naps), it says so and takes no work.
    napping = asyncio.ensure_future(client.send_message(Nap(3.0), agent))

    async def napping_now() -> bool:
        session = worker._session
        return session is not None and session.hosting.in_flight > 0

    await wait_until(napping_now, timeout=15, what="the nap runs")
    stopping = asyncio.ensure_future(worker.stop())
    body = await wait_until(not_ready, timeout=15, what="readyz says it drains")
    assert json.loads(body)["draining"] is True
    await asyncio.wait_for(stopping, 60)
    assert (await asyncio.wait_for(napping, 60)).count == 1  # answered before it left
    runtimes.running.remove(worker)

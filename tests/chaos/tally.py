"""The SIGTERM of a worker of the tally example while a batch runs, as a new user would try it:
two ``agnext-broker worker --app agnext_broker.examples.tally:register`` processes, a caller of
``RunBatch`` (20 keys x 100 items), and ``kill -TERM`` of one worker once 30% is tallied.

It uses nothing but the command line, the example and what the example leaves in Redis and
RabbitMQ, so it runs as well against another checkout of the project (``repo``): the figures
of an older version, measured the same way in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import aio_pika
import redis.asyncio

from agnext_broker.application.broker._names import Names
from tests.chaos.harness import Outcome
from tests.servers import RabbitMQServer, RedisServer

TALLY_APP = "agnext_broker.examples.tally:register"
KEYS = [f"key{i:02d}" for i in range(20)]
ITEMS_PER_KEY = 100
PARTITIONS = 4

CALLER = """
import asyncio, json, sys
from agnext_broker import AgentId
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings
from agnext_broker.examples.tally import RunBatch

async def main() -> None:
    runtime = BrokerAgentRuntime(BrokerSettings.from_env(rpc_timeout=120.0))
    await runtime.start()
    batch = RunBatch(keys=json.loads(sys.argv[1]), items_per_key=int(sys.argv[2]), timeout_s=100)
    try:
        report = await runtime.send_message(batch, AgentId("coordinator", "default"))
        outcome = {"items": report.items}
    except BaseException as e:
        outcome = {"error": f"{type(e).__name__}: {e}"[:300]}
    await runtime.stop()
    print(json.dumps(outcome), flush=True)

asyncio.run(main())
"""


async def sigterm_tally(
    rabbitmq: RabbitMQServer,
    redis_server: RedisServer,
    work_dir: Path,
    repo: Path,
    *,
    stop: str,
    row: str,
    name: str,
) -> Outcome:
    """``stop``: ``"coordinator"`` (the worker hosting the batch's coordinator) or ``"other"``."""
    outcome = Outcome(row, name)
    namespace = "tally" + uuid.uuid4().hex[:8]
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "PYTHONUNBUFFERED": "1",
        "AGNEXT_AMQP_URL": rabbitmq.amqp_url,
        "AGNEXT_REDIS_URL": redis_server.redis_url,
        "AGNEXT_NAMESPACE": namespace,
        "AGNEXT_PARTITIONS": str(PARTITIONS),
        "AGNEXT_HEARTBEAT_INTERVAL": "0.5",
        "AGNEXT_WORKER_EXPIRY": "2",
    }
    client = redis.asyncio.Redis.from_url(redis_server.redis_url, decode_responses=True)
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(
        args: list[str], log: str, stdout: Any = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        with open(work_dir / f"{namespace}-{log}.log", "wb") as err:
            process = subprocess.Popen(
                [sys.executable, *args], cwd=repo, env=env, stdout=stdout, stderr=err
            )
        processes.append(process)
        return process

    try:
        workers = []
        for index in range(2):
            worker_id = f"t{index}-{uuid.uuid4().hex[:4]}"
            args = [
                "-m",
                "agnext_broker",
                "worker",
                "--app",
                "agnext_broker.examples.tally:register",
            ]
            workers.append((worker_id, spawn([*args, "--worker-id", worker_id], worker_id)))
            await _until_owned(client, namespace, {w for w, _ in workers})
        holder = await _owner(client, namespace, "coordinator", "default")
        target = next(p for w, p in workers if (w == holder) == (stop == "coordinator"))
        caller = spawn(
            ["-c", CALLER, json.dumps(KEYS), str(ITEMS_PER_KEY)], "caller", subprocess.PIPE
        )
        total = len(KEYS) * ITEMS_PER_KEY
        deadline = time.monotonic() + 120
        while await _reported(client, namespace) < total * 3 // 10:
            if time.monotonic() > deadline or caller.poll() is not None:
                raise AssertionError("the batch never reached 30%")
            await asyncio.sleep(0.02)
        outcome.notes["tallied at SIGTERM"] = await _reported(client, namespace)
        target.send_signal(signal.SIGTERM)
        outcome.notes["exit code"] = await asyncio.to_thread(target.wait, 120)
        stdout, _ = await asyncio.to_thread(caller.communicate, timeout=180)
        answer = json.loads(stdout.decode().strip().splitlines()[-1])
        outcome.notes["caller"] = answer.get("error") or f"report of {answer['items']} items"
        counts = await _settled_counts(client, namespace)
        applied = sum(min(counts.get(k, 0), ITEMS_PER_KEY) for k in KEYS)
        outcome.sent = total
        outcome.effects = applied
        outcome.handled = sum(counts.values())
        outcome.duplicates = sum(max(0, counts.get(k, 0) - ITEMS_PER_KEY) for k in KEYS)
        outcome.lost = total - applied
        outcome.failed_calls = 0 if "items" in answer and answer["items"] == total else 1
        outcome.dead_lettered = await _dead_letters(rabbitmq.amqp_url, namespace)
        return outcome
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        await client.aclose()


async def _until_owned(client: redis.asyncio.Redis, namespace: str, workers: set[str]) -> None:
    """Until every partition of the three types is held by one of ``workers`` and each of them
    holds some (either version's registry keys)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        holders = set()
        for agent_type in ("coordinator", "tallier", "reporter"):
            for p in range(PARTITIONS):
                holders.add(await _holder(client, namespace, agent_type, p))
        if holders == workers:
            await asyncio.sleep(1.5)  # the hand-over to the newest worker ends its claims
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the partitions were not shared by {workers}")


async def _holder(client: redis.asyncio.Redis, namespace: str, agent_type: str, p: int) -> Any:
    # This version's key, then the one of versions before the registry had its hash tag.
    for key in (Names(namespace).owner_key(agent_type, p), f"{namespace}:owner:{agent_type}:{p}"):
        value = await client.get(key)
        if value is not None:
            return value
    return None


async def _owner(client: redis.asyncio.Redis, namespace: str, agent_type: str, key: str) -> Any:
    return await _holder(client, namespace, agent_type, zlib.crc32(key.encode()) & (PARTITIONS - 1))


async def _state(client: redis.asyncio.Redis, namespace: str, agent: str) -> dict[str, Any]:
    document = await client.get(f"{namespace}:agent:{{{agent}}}")
    return dict(json.loads(document).get("state") or {}) if document else {}


async def _reported(client: redis.asyncio.Redis, namespace: str) -> int:
    return int((await _state(client, namespace, "reporter/default")).get("items", 0))


async def _settled_counts(client: redis.asyncio.Redis, namespace: str) -> dict[str, int]:
    """Each tallier's count, once none has changed for three seconds (or after a minute)."""
    last: dict[str, int] = {}
    since = time.monotonic()
    began = since
    while time.monotonic() - since < 3.0 and time.monotonic() - began < 60:
        counts = {
            k: int((await _state(client, namespace, f"tallier/{k}")).get("count", 0)) for k in KEYS
        }
        if counts != last:
            last, since = counts, time.monotonic()
        await asyncio.sleep(0.2)
    return last


async def _dead_letters(amqp_url: str, namespace: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{namespace}.dead-letter", passive=True)
        return int(queue.declaration_result.message_count or 0)

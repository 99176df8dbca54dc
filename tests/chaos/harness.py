"""What every fault scenario uses: worker processes of the ledger app on private servers, loads
that retry like a careful user (the same message id until it goes through), and the checker.

A *sent* message is one the load got through: an event the broker confirmed, an RPC that was
answered. The checker then reads every ledger's saved state in Redis and counts:

- ``effects``: distinct messages applied; ``duplicates``: messages applied more than once
  (must be 0); ``lost``: sent but not applied (must be 0); ``unexpected``: applied but never
  sent (0);
- ``handled``: handler invocations in the workers, re-runs after crashes included (so
  ``handled - effects`` is the work done again);
- ``dead_lettered``: messages in the namespace's dead-letter queue, by reason;
- ``failed_calls``: calls that never got through, however often retried (must be 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import redis.asyncio

from agnext_broker import (
    AgentId,
    BrokerAgentRuntime,
    BrokerSettings,
    TopicId,
    try_get_known_serializers_for_type,
)
from agnext_broker.application.broker._assignment import plan
from agnext_broker.application.broker._names import Names
from tests.chaos.app import CREDITS_TOPIC, LEDGER_TYPE, Balance, Credit, Snapshot
from tests.chaos.proxy import TcpProxy
from tests.servers import RabbitMQServer, RedisServer

REPO_ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 8
HEARTBEAT_INTERVAL = 0.5
WORKER_EXPIRY = 2.0
APP = "tests.chaos.app:register"

RETRYABLE = (TimeoutError, ConnectionError)


@dataclass
class Outcome:
    """One row of the fault matrix."""

    row: str
    name: str
    sent: int = 0
    handled: int = 0
    effects: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    lost: int = 0
    unexpected: int = 0
    failed_calls: int = 0
    retries: int = 0
    recovery_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicates or self.unexpected or self.failed_calls)


@dataclass
class Worker:
    name: str
    worker_id: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            os.kill(self.process.pid, signum)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    """Worker processes of the ledger app for one namespace on the given servers; optionally
    behind TCP proxies (``network=True``), so that a scenario can cut or stall the network."""

    def __init__(
        self,
        rabbitmq: RabbitMQServer,
        redis_server: RedisServer,
        work_dir: Path,
        *,
        network: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.rabbitmq = rabbitmq
        self.redis_server = redis_server
        self.namespace = "chaos" + uuid.uuid4().hex[:8]
        self.dir = work_dir / self.namespace
        self.dir.mkdir(parents=True, exist_ok=True)
        self.network = network
        self.env = dict(env or {})
        self.amqp_proxy: TcpProxy | None = None
        self.redis_proxy: TcpProxy | None = None
        self.workers: list[Worker] = []
        self.clients: list[BrokerAgentRuntime] = []
        self.redis = redis.asyncio.Redis.from_url(redis_server.redis_url)
        self._names = itertools.count(1)

    async def __aenter__(self) -> Cluster:
        if self.network:
            self.amqp_proxy = await TcpProxy.start(self.rabbitmq.port)
            self.redis_proxy = await TcpProxy.start(self.redis_server.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- addresses --------------------------------------------------------------------------

    @property
    def amqp_url(self) -> str:
        url = self.rabbitmq.amqp_url
        return self.amqp_proxy.url_for(url, self.rabbitmq.port) if self.amqp_proxy else url

    @property
    def redis_url(self) -> str:
        url = self.redis_server.redis_url
        return self.redis_proxy.url_for(url, self.redis_server.port) if self.redis_proxy else url

    def settings(self, **changes: Any) -> BrokerSettings:
        values: dict[str, Any] = {
            "amqp_url": self.amqp_url,
            "redis_url": self.redis_url,
            "namespace": self.namespace,
            "partitions": PARTITIONS,
            "heartbeat_interval": HEARTBEAT_INTERVAL,
            "worker_expiry": WORKER_EXPIRY,
            "rpc_timeout": 5.0,
            "publish_timeout": 5.0,
        }
        values.update(changes)
        return BrokerSettings(**values)

    # -- workers ----------------------------------------------------------------------------

    def start_worker(self, env: dict[str, str] | None = None) -> Worker:
        name = f"w{next(self._names)}"
        worker_id = f"{name}-{uuid.uuid4().hex[:4]}"
        variables = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "CHAOS_DIR": str(self.dir),
            "AGNEXT_AMQP_URL": self.amqp_url,
            "AGNEXT_REDIS_URL": self.redis_url,
            "AGNEXT_NAMESPACE": self.namespace,
            "AGNEXT_PARTITIONS": str(PARTITIONS),
            "AGNEXT_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
            "AGNEXT_WORKER_EXPIRY": str(WORKER_EXPIRY),
            "AGNEXT_DRAIN_TIMEOUT": "30",
            **self.env,
            **(env or {}),
        }
        log_path = self.dir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "agnext_broker", "worker", "--app", APP],
                cwd=REPO_ROOT,
                env={**variables, "AGNEXT_WORKER_ID": worker_id},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        worker = Worker(name, worker_id, process, log_path)
        self.workers.append(worker)
        return worker

    @property
    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    async def start_workers(self, count: int, timeout: float = 60.0) -> list[Worker]:
        started = [self.start_worker() for _ in range(count)]
        await self.until_settled(timeout)
        return started

    async def registered(self) -> set[str]:
        now_ms = (await self.redis.time())[0] * 1000
        ids = await self.redis.zrangebyscore(Names(self.namespace).workers_key, now_ms, "+inf")
        return {i.decode() for i in ids}

    async def holders(self) -> list[str | None]:
        names = Names(self.namespace)
        keys = [names.owner_key(LEDGER_TYPE, p) for p in range(PARTITIONS)]
        return [None if v is None else v.decode() for v in await self.redis.mget(keys)]

    async def until_settled(self, timeout: float = 60.0) -> None:
        """Until every live worker is registered and the partitions are where the plan puts
        them (a hand-over in progress has finished)."""
        deadline = time.monotonic() + timeout
        while True:
            live = {w.worker_id for w in self.live}
            holders = await self.holders()
            if live and live <= await self.registered() and set(holders) <= live:
                hosts = sorted(live)
                if None not in holders and plan(LEDGER_TYPE, hosts, holders) == holders:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the cluster did not settle: holders {holders}, live {live}\n{self.logs()}"
                )
            await asyncio.sleep(0.1)

    def owner_of(self, key: str, holders: list[str | None]) -> Worker | None:
        holder = holders[zlib.crc32(key.encode()) & (PARTITIONS - 1)]
        return next((w for w in self.workers if w.worker_id == holder and w.alive), None)

    def logs(self, lines: int = 15) -> str:
        out = []
        for worker in self.workers:
            tail = "\n".join(worker.log().splitlines()[-lines:])
            state = "running" if worker.alive else f"exit {worker.process.returncode}"
            out.append(f"--- {worker.name} ({worker.worker_id}, {state}) ---\n{tail}")
        return "\n".join(out)

    # -- clients ----------------------------------------------------------------------------

    async def client(self, **changes: Any) -> BrokerAgentRuntime:
        runtime = BrokerAgentRuntime(self.settings(**changes))
        for message_type in (Credit, Balance, Snapshot):
            runtime.add_message_serializer(try_get_known_serializers_for_type(message_type))
        self.clients.append(runtime)
        await runtime.start()
        return runtime

    # -- what happened ----------------------------------------------------------------------

    def invocations(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("invocations.*"))

    async def applied(self) -> dict[str, list[str]]:
        """Every ledger's applied message ids, by key, from its saved state in Redis."""
        prefix = f"{self.namespace}:agent:{{{LEDGER_TYPE}/"
        found: dict[str, list[str]] = {}
        async for key in self.redis.scan_iter(match=f"{prefix}*", count=500):
            document = await self.redis.get(key)
            if document is not None:
                name = key.decode()[len(prefix) : -1]
                found[name] = list(json.loads(document)["state"].get("ids", []))
        return found

    async def dead_letter_count(self) -> int:
        connection = await aio_pika.connect(self.rabbitmq.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(f"{self.namespace}.dead-letter", passive=True)
            return int(queue.declaration_result.message_count or 0)

    async def dead_letters(self) -> Counter[str]:
        """The dead-letter queue's messages by reason (read and removed)."""
        reasons: Counter[str] = Counter()
        connection = await aio_pika.connect(self.rabbitmq.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(f"{self.namespace}.dead-letter", passive=True)
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                headers = message.headers or {}
                reason = headers.get("x-agnext-reason") or headers.get("x-first-death-reason")
                reasons[str(reason)] += 1
        return reasons

    async def check(
        self,
        outcome: Outcome,
        sent: Iterable[str],
        *,
        attempted: Iterable[str] = (),
        dead: int = 0,
        timeout: float = 60.0,
    ) -> Outcome:
        """Wait until what was sent is applied and ``dead`` messages are dead-lettered (or
        ``timeout``), then fill in the counts."""
        sent_ids = set(sent)
        attempted_ids = set(attempted) | sent_ids
        deadline = time.monotonic() + timeout
        while True:
            applied = await self.applied()
            ids = [i for values in applied.values() for i in values]
            done = sent_ids <= set(ids) and await self.dead_letter_count() >= dead
            if done or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        counts = Counter(ids)
        outcome.sent = len(sent_ids)
        outcome.effects = len(counts)
        outcome.duplicates = sum(1 for n in counts.values() if n > 1)
        outcome.lost = len(sent_ids - set(counts))
        outcome.unexpected = len(set(counts) - attempted_ids)
        outcome.handled = self.invocations()
        reasons = await self.dead_letters()
        outcome.dead_lettered = sum(reasons.values())
        if reasons:
            outcome.notes["dead letters"] = dict(reasons)
        return outcome

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.stop(), 30)
        for worker in self.workers:
            if worker.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=10)
        for proxy in (self.amqp_proxy, self.redis_proxy):
            if proxy is not None:
                await proxy.close()
        await self.redis.aclose()


# -- loads ---------------------------------------------------------------------------------


@dataclass
class Calls:
    """What a load got through, and how hard it had to try."""

    sent: list[str] = field(default_factory=list)
    attempted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


async def _until_through(
    calls: Calls, message_id: str, attempt: Callable[[], Awaitable[Any]], patience: float
) -> None:
    """Try ``attempt()`` (with the same message id every time) until it goes through, for up
    to ``patience`` seconds; record the outcome in ``calls``."""
    loop = asyncio.get_running_loop()
    calls.attempted.append(message_id)
    give_up = loop.time() + patience
    while True:
        sent_at = loop.time()
        try:
            await attempt()
            calls.sent.append(message_id)
            calls.latencies.append(loop.time() - sent_at)
            return
        except RETRYABLE as e:
            calls.errors[type(e).__name__] += 1
            if loop.time() > give_up:
                calls.failed.append(message_id)
                return
            calls.retries += 1
            await asyncio.sleep(0.2)


async def publish_credits(
    client: BrokerAgentRuntime,
    keys: list[str],
    count: int,
    *,
    prefix: str,
    rate: float = 0.0,
    credit: Credit | None = None,
    patience: float = 120.0,
    lanes: int = 8,
) -> Calls:
    """Publish ``count`` credits to ``credits/<key>`` (round robin), at most ``rate`` per
    second (0: as fast as confirms allow); each is published again with the same id until
    the broker confirms it, for up to ``patience`` seconds."""
    calls = Calls()
    message = credit or Credit()
    loop = asyncio.get_running_loop()
    began = loop.time()
    indexes = iter(range(count))

    async def lane() -> None:
        for index in indexes:
            if rate:
                await asyncio.sleep(max(0.0, began + index / rate - loop.time()))
            message_id = f"{prefix}-{index}"
            topic = TopicId(CREDITS_TOPIC, keys[index % len(keys)])
            await _until_through(
                calls,
                message_id,
                partial(client.publish_message, message, topic, message_id=message_id),
                patience,
            )

    await asyncio.gather(*(lane() for _ in range(lanes)))
    return calls


async def send_credits(
    client: BrokerAgentRuntime,
    keys: list[str],
    count: int,
    *,
    prefix: str,
    credit: Credit | None = None,
    concurrency: int = 8,
    patience: float = 120.0,
) -> Calls:
    """Send ``count`` credit RPCs (round robin over ``keys``), ``concurrency`` at a time; one
    that fails (timeout, connection) is sent again with the same id until answered, for up to
    ``patience`` seconds."""
    calls = Calls()
    message = credit or Credit()
    indexes = iter(range(count))

    async def lane() -> None:
        for index in indexes:
            message_id = f"{prefix}-{index}"
            agent = AgentId(LEDGER_TYPE, keys[index % len(keys)])
            await _until_through(
                calls,
                message_id,
                partial(client.send_message, message, agent, message_id=message_id),
                patience,
            )

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return calls


async def recovery(client: BrokerAgentRuntime, since: float, key: str = "probe") -> float:
    """Seconds from ``since`` (``loop.time()``) until a round trip to a ledger succeeds."""
    loop = asyncio.get_running_loop()
    agent = AgentId(LEDGER_TYPE, key)
    while True:
        try:
            await client.send_message(Balance(), agent)
            return loop.time() - since
        except RETRYABLE:
            await asyncio.sleep(0.1)


def fill(outcome: Outcome, calls: Calls) -> Outcome:
    outcome.failed_calls += len(calls.failed)
    outcome.retries += calls.retries
    if calls.errors:
        outcome.notes["errors seen"] = dict(calls.errors)
    if calls.latencies:
        ordered = sorted(calls.latencies)
        outcome.notes["p50 ms"] = round(ordered[len(ordered) // 2] * 1000, 1)
        outcome.notes["p99 ms"] = round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1)
    return outcome


async def repeat(times: int, every: float, action: Callable[[], Awaitable[None]]) -> None:
    for _ in range(times):
        await asyncio.sleep(every)
        await action()


def pick(workers: list[Worker]) -> Worker:
    return random.choice(workers)

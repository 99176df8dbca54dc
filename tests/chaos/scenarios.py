"""The fault matrix of ../shared/RELIABILITY.md, one scenario per row, on the ledger app.

Each scenario takes the servers and a work directory, runs its load and its fault on a fresh
namespace with three worker processes (unless the row says otherwise), and returns the row's
:class:`Outcome`. ``quick`` shortens the load (the tests run them so); the full run is
``scripts/chaos.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from agnext_broker import AgentId, TopicId, UndeliverableException
from agnext_broker.application.broker._routing import routing_key
from tests.chaos.app import Balance, Credit, overlaps_key
from tests.chaos.harness import (
    REPO_ROOT,
    Cluster,
    Outcome,
    fill,
    pick,
    publish_credits,
    recovery,
    repeat,
    send_credits,
)
from tests.chaos.tally import sigterm_tally
from tests.servers import RabbitMQServer, RedisServer


@dataclass
class Env:
    rabbitmq: RabbitMQServer
    redis: RedisServer
    work_dir: Path
    quick: bool = False
    repo: Path = REPO_ROOT  # the checkout the tally rows run their workers from

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


Scenario = Callable[[Env], Awaitable[Outcome]]
SCENARIOS: dict[str, tuple[str, Scenario]] = {}


def row(number: str, name: str) -> Callable[[Scenario], Scenario]:
    def register(scenario: Scenario) -> Scenario:
        SCENARIOS[number] = (name, scenario)
        return scenario

    return register


def keys(count: int) -> list[str]:
    return [f"k{i}" for i in range(count)]


# -- workers dying ---------------------------------------------------------------------------


@row("1", "worker SIGKILL mid-handler (events)")
async def sigkill_mid_handler(env: Env) -> Outcome:
    outcome = Outcome("1", SCENARIOS["1"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        client = await cluster.client(publish_timeout=10.0)
        kills = env.scale(4, 2)

        async def kill_one() -> None:
            victim = pick(cluster.live)
            victim.signal(signal.SIGKILL)
            cluster.start_worker()  # the replacement a deployment would start

        load = asyncio.ensure_future(
            publish_credits(
                client,
                keys(60),
                env.scale(3000, 800),
                prefix="e",
                rate=env.scale(150, 100),
                credit=Credit(nap=0.2),  # a kill lands between the change and the save
            )
        )
        await repeat(kills, env.scale(4.0, 2.0), kill_one)
        calls = await load
        await cluster.until_settled()
        outcome.notes["kills"] = kills
        fill(outcome, calls)
        return await cluster.check(outcome, calls.sent, attempted=calls.attempted)


@row("2", "worker SIGKILL mid-RPC")
async def sigkill_mid_rpc(env: Env) -> Outcome:
    outcome = Outcome("2", SCENARIOS["2"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        client = await cluster.client(rpc_timeout=5.0)
        kills = env.scale(4, 2)

        async def kill_busy() -> None:
            holders = await cluster.holders()
            victim = cluster.owner_of("k0", holders) or pick(cluster.live)
            victim.signal(signal.SIGKILL)
            cluster.start_worker()

        load = asyncio.ensure_future(
            send_credits(
                client,
                keys(12),
                env.scale(400, 120),
                prefix="r",
                credit=Credit(nap=0.5),
                concurrency=12,
            )
        )
        await repeat(kills, env.scale(3.0, 2.0), kill_busy)
        calls = await load
        outcome.notes["kills"] = kills
        fill(outcome, calls)
        return await cluster.check(outcome, calls.sent, attempted=calls.attempted)


@row("3", "worker SIGTERM with handlers in flight")
async def sigterm_in_flight(env: Env) -> Outcome:
    outcome = Outcome("3", SCENARIOS["3"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        workers = await cluster.start_workers(3)
        client = await cluster.client(publish_timeout=10.0)
        load = asyncio.ensure_future(
            publish_credits(
                client, keys(50), env.scale(2000, 600), prefix="t", credit=Credit(nap=0.5)
            )
        )
        await asyncio.sleep(env.scale(3.0, 2.0))
        stopped = workers[0]
        began = asyncio.get_running_loop().time()
        stopped.signal(signal.SIGTERM)
        code = await asyncio.to_thread(stopped.process.wait, 120)
        outcome.notes["drain s"] = round(asyncio.get_running_loop().time() - began, 2)
        outcome.notes["exit code"] = code
        calls = await load
        fill(outcome, calls)
        return await cluster.check(outcome, calls.sent, attempted=calls.attempted)


@row("3c", "tally example: SIGTERM of the coordinator's worker")
async def tally_sigterm_coordinator(env: Env) -> Outcome:
    name = SCENARIOS["3c"][0]
    return await sigterm_tally(
        env.rabbitmq, env.redis, env.work_dir, env.repo, stop="coordinator", row="3c", name=name
    )


@row("3o", "tally example: SIGTERM of the other worker")
async def tally_sigterm_other(env: Env) -> Outcome:
    name = SCENARIOS["3o"][0]
    return await sigterm_tally(
        env.rabbitmq, env.redis, env.work_dir, env.repo, stop="other", row="3o", name=name
    )


# -- the broker -----------------------------------------------------------------------------


async def _broker_fault(
    env: Env, number: str, fault: Callable[[Cluster], Awaitable[None]], *, network: bool = False
) -> Outcome:
    outcome = Outcome(number, SCENARIOS[number][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir, network=network) as cluster:
        await cluster.start_workers(3)
        client = await cluster.client(publish_timeout=5.0, rpc_timeout=5.0)
        events = asyncio.ensure_future(
            publish_credits(client, keys(30), env.scale(3000, 1000), prefix="e", rate=200)
        )
        rpcs = asyncio.ensure_future(
            send_credits(client, keys(30), env.scale(600, 200), prefix="r", concurrency=4)
        )
        await asyncio.sleep(env.scale(3.0, 2.0))
        await fault(cluster)
        ended = asyncio.get_running_loop().time()
        outcome.recovery_s = round(await recovery(client, ended), 2)
        for calls in await asyncio.gather(events, rpcs):
            fill(outcome, calls)
        sent = [*events.result().sent, *rpcs.result().sent]
        attempted = [*events.result().attempted, *rpcs.result().attempted]
        return await cluster.check(outcome, sent, attempted=attempted)


@row("5", "broker restart under load")
async def broker_restart(env: Env) -> Outcome:
    async def restart(cluster: Cluster) -> None:
        await env.rabbitmq.astop()
        await asyncio.sleep(env.scale(10.0, 3.0))  # the outage
        await env.rabbitmq.astart()

    return await _broker_fault(env, "5", restart)


@row("6", "forced connection close")
async def connections_closed(env: Env) -> Outcome:
    async def close_all(cluster: Cluster) -> None:
        await env.rabbitmq.actl("close_all_connections", "chaos: forced close")

    return await _broker_fault(env, "6", close_all)


@row("7", "network drop to the broker (RST)")
async def network_reset(env: Env) -> Outcome:
    async def reset(cluster: Cluster) -> None:
        proxy = cluster.amqp_proxy
        assert proxy is not None
        proxy.reset_all()
        await asyncio.sleep(2.0)  # the load goes on over the new connections
        proxy.reset_all()  # the recovery is timed from this one

    return await _broker_fault(env, "7", reset, network=True)


# -- Redis ----------------------------------------------------------------------------------


async def _redis_fault(env: Env, number: str, fault: Callable[[], Awaitable[None]]) -> Outcome:
    outcome = Outcome(number, SCENARIOS[number][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        client = await cluster.client(publish_timeout=10.0, rpc_timeout=10.0)
        events = asyncio.ensure_future(
            publish_credits(client, keys(30), env.scale(3000, 1000), prefix="e", rate=200)
        )
        rpcs = asyncio.ensure_future(
            send_credits(client, keys(30), env.scale(600, 200), prefix="r", concurrency=4)
        )
        await asyncio.sleep(env.scale(3.0, 2.0))
        await fault()
        ended = asyncio.get_running_loop().time()
        outcome.recovery_s = round(await recovery(client, ended), 2)
        for calls in await asyncio.gather(events, rpcs):
            fill(outcome, calls)
        await cluster.redis.connection_pool.disconnect()
        sent = [*events.result().sent, *rpcs.result().sent]
        attempted = [*events.result().attempted, *rpcs.result().attempted]
        return await cluster.check(outcome, sent, attempted=attempted)


@row("10", "Redis clean restart")
async def redis_restart(env: Env) -> Outcome:
    async def restart() -> None:
        await env.redis.astop()
        await asyncio.sleep(env.scale(5.0, 2.0))
        await env.redis.astart()

    return await _redis_fault(env, "10", restart)


@row("11", "Redis SIGKILL (AOF everysec)")
async def redis_sigkill(env: Env) -> Outcome:
    async def kill() -> None:
        await env.redis.akill()
        await asyncio.sleep(1.0)
        await env.redis.astart()

    return await _redis_fault(env, "11", kill)


# -- a worker that stalls -------------------------------------------------------------------


@row("12", "worker stalled past its expiry (SIGSTOP, SIGCONT)")
async def stalled_worker(env: Env) -> Outcome:
    """A worker frozen for longer than both its Redis heartbeat expiry and its AMQP heartbeat:
    RabbitMQ closes its connection and gives its deliveries to the others, which take its
    partitions over; when it wakes up, what it was in the middle of saving is refused (its
    version is stale) and handled once, by the new owner."""
    outcome = Outcome("12", SCENARIOS["12"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        heartbeat = {"AGNEXT_AMQP_URL": f"{cluster.amqp_url}?heartbeat={AMQP_HEARTBEAT}"}
        workers = [cluster.start_worker(heartbeat) for _ in range(3)]
        await cluster.until_settled()
        client = await cluster.client(rpc_timeout=5.0)
        load = asyncio.ensure_future(
            send_credits(
                client,
                keys(24),
                env.scale(600, 240),
                prefix="s",
                credit=Credit(nap=0.3),
                concurrency=12,
            )
        )
        await asyncio.sleep(2.0)
        stalled = workers[0]
        stalled.signal(signal.SIGSTOP)
        await asyncio.sleep(4 * AMQP_HEARTBEAT)  # past both heartbeats
        stalled.signal(signal.SIGCONT)
        calls = await load
        await cluster.until_settled()
        log = stalled.log()
        outcome.notes["stale writes refused"] = log.count("goes back to the queue")
        outcome.notes["took partitions back"] = log.count("keeps it")
        fill(outcome, calls)
        return await cluster.check(outcome, calls.sent, attempted=calls.attempted)


AMQP_HEARTBEAT = 3


# -- bad input ------------------------------------------------------------------------------


@row("13", "poison message")
async def poison(env: Env) -> Outcome:
    outcome = Outcome("13", SCENARIOS["13"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        client = await cluster.client()
        good = env.scale(4000, 1000)
        began = time.monotonic()
        calls = await publish_credits(client, keys(40), good, prefix="g")
        bad = await publish_credits(
            client, keys(40), good // 1000, prefix="p", credit=Credit(poison=True)
        )
        fill(outcome, calls)
        fill(outcome, bad)
        checked = await cluster.check(
            outcome, calls.sent, attempted=calls.attempted, dead=len(bad.sent)
        )
        outcome.notes["seconds for all good ones"] = round(time.monotonic() - began, 2)
        outcome.notes["poisoned"] = len(bad.sent)
        return checked


def _raw_headers(event_id: str | None, **extra: object) -> dict[str, object]:
    headers: dict[str, object] = {
        "ce-specversion": "1.0",
        "ce-source": "chaos",
        "ce-type": "Credit",
        "ce-agkind": "publish",
        "ce-agtopictype": "credits",
        "ce-agtopicsource": "k1",
    }
    if event_id is not None:
        headers["ce-id"] = event_id
    headers.update(extra)
    return headers


@row("14", "malformed CloudEvents")
async def malformed(env: Env) -> Outcome:
    outcome = Outcome("14", SCENARIOS["14"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        client = await cluster.client()
        key = routing_key("k1", "credits")
        cases: list[tuple[dict[str, object], bytes, str]] = [
            (_raw_headers(None), b"{}", "missing ce-id"),
            (_raw_headers("m1", **{"ce-specversion": "0.3"}), b"{}", "specversion 0.3"),
            (_raw_headers("m2"), b"{not json", "invalid JSON"),
            (_raw_headers("m3", **{"ce-type": "NoSuchType"}), b"{}", "unknown type"),
            (_raw_headers("m4", **{"ce-time": "yesterday"}), b"{}", "bad time"),
            (_raw_headers("m5"), b"\xff\xfe", "not UTF-8"),
            (_raw_headers("m6"), b"x" * (5 * 1024 * 1024), "over max_message_bytes"),
        ]
        connection = await aio_pika.connect(env.rabbitmq.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(f"{cluster.namespace}.events")
            for headers, body, _ in cases:
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        headers=headers,  # type: ignore[arg-type]
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    key,
                )
        calls = await publish_credits(client, keys(10), env.scale(500, 200), prefix="ok")
        fill(outcome, calls)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            queue_state = await env.rabbitmq.actl(
                "list_queues", "name", "messages", "--quiet", check=False
            )
            line = f"{cluster.namespace}.dead-letter\t{len(cases)}"
            if line in queue_state.stdout:
                break
            await asyncio.sleep(0.2)
        checked = await cluster.check(
            outcome, calls.sent, attempted=calls.attempted, dead=len(cases)
        )
        outcome.notes["injected"] = len(cases)
        outcome.notes["worker restarts"] = sum(1 for w in cluster.workers if not w.alive)
        return checked


@row("15", "unknown recipient type, unknown message type, no subscriber")
async def unknown(env: Env) -> Outcome:
    outcome = Outcome("15", SCENARIOS["15"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        client = await cluster.client(rpc_timeout=30.0)
        began = time.monotonic()
        try:
            await client.send_message(Balance(), AgentId("nobody", "x"))
            outcome.notes["unknown type"] = "answered?!"
            outcome.failed_calls += 1
        except UndeliverableException:
            outcome.notes["undeliverable after ms"] = round((time.monotonic() - began) * 1000, 1)
        await client.publish_message(Credit(), TopicId("nobody-listens", "x"))  # not an error
        calls = await send_credits(client, keys(10), env.scale(300, 100), prefix="ok")
        fill(outcome, calls)
        return await cluster.check(outcome, calls.sent, attempted=calls.attempted)


@row("17", "duplicate deliveries (every event published twice)")
async def duplicates(env: Env) -> Outcome:
    outcome = Outcome("17", SCENARIOS["17"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        client = await cluster.client()
        first = await publish_credits(client, keys(20), env.scale(2000, 500), prefix="d")
        again = await publish_credits(client, keys(20), env.scale(2000, 500), prefix="d")
        fill(outcome, first)
        fill(outcome, again)
        checked = await cluster.check(outcome, first.sent, attempted=first.attempted)
        outcome.notes["published"] = len(first.sent) + len(again.sent)
        return checked


@row("18", "one agent, four publishers, a stalled owner")
async def one_agent(env: Env) -> Outcome:
    outcome = Outcome("18", SCENARIOS["18"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        publishers = [await cluster.client() for _ in range(4)]
        total = env.scale(1000, 400)
        credit = Credit(exclusive=True, nap=0.005)
        loads = [
            asyncio.ensure_future(
                publish_credits(p, ["hot"], total // 4, prefix=f"p{i}", credit=credit, lanes=2)
            )
            for i, p in enumerate(publishers)
        ]
        await asyncio.sleep(1.0)
        owner = cluster.owner_of("hot", await cluster.holders())
        if owner is not None:  # the lease-expiry fault: its heartbeat lapses, it comes back
            owner.signal(signal.SIGSTOP)
            await asyncio.sleep(WORKER_STALL)
            owner.signal(signal.SIGCONT)
        results = await asyncio.gather(*loads)
        sent = [i for calls in results for i in calls.sent]
        for calls in results:
            fill(outcome, calls)
        overlaps = await cluster.redis.lrange(overlaps_key(cluster.namespace), 0, -1)
        outcome.notes["overlapping activations"] = len(overlaps)
        checked = await cluster.check(outcome, sent)
        applied = await cluster.applied()
        outcome.notes["final count"] = len(applied.get("hot", []))
        return checked


WORKER_STALL = 4.0


# -- load -------------------------------------------------------------------------------------


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@row("19", "slow consumer (publish at 10x the handling rate)")
async def slow_consumer(env: Env) -> Outcome:
    outcome = Outcome("19", SCENARIOS["19"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        workers = await cluster.start_workers(3)
        client = await cluster.client(publish_timeout=30.0)
        # 24 agents, 100 ms each: about 240 handled per second; published at ten times that.
        count = env.scale(6000, 2400)
        peak_rss = 0.0
        peak_unacked = 0

        async def watch() -> None:
            nonlocal peak_rss, peak_unacked
            while True:
                peak_rss = max(peak_rss, *(_rss_mb(w.process.pid) for w in workers))
                listed = await env.rabbitmq.actl(
                    "list_channels", "messages_unacknowledged", "--quiet", check=False
                )
                for line in listed.stdout.split():
                    if line.isdigit():
                        peak_unacked = max(peak_unacked, int(line))
                await asyncio.sleep(0.5)

        watcher = asyncio.ensure_future(watch())
        began = time.monotonic()
        calls = await publish_credits(
            client, keys(24), count, prefix="s", rate=2400, credit=Credit(nap=0.1), lanes=32
        )
        published_s = time.monotonic() - began
        fill(outcome, calls)
        checked = await cluster.check(outcome, calls.sent, timeout=180)
        watcher.cancel()
        outcome.notes["published in s"] = round(published_s, 1)
        outcome.notes["handled in s"] = round(time.monotonic() - began, 1)
        outcome.notes["worker RSS peak MB"] = round(peak_rss, 1)
        outcome.notes["unacked per channel peak"] = peak_unacked
        outcome.notes["prefetch"] = 64
        return checked


@row("19b", "a caller starting 50,000 publishes at once")
async def burst(env: Env) -> Outcome:
    outcome = Outcome("19b", SCENARIOS["19b"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        await cluster.start_workers(3)
        count = env.scale(50_000, 10_000)
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                str(REPO_ROOT / "tests" / "chaos" / "burst.py"),
                cluster.amqp_url,
                cluster.redis_url,
                cluster.namespace,
                str(count),
            ],
            cwd=env.repo,
            env={**os.environ, "PYTHONPATH": str(env.repo)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        report = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout else {}
        if done.returncode:
            outcome.notes["caller failed"] = done.stderr[-500:]
            outcome.failed_calls += count
        outcome.notes.update(report)
        sent = [f"b-{i}" for i in range(report.get("confirmed", 0))]
        return await cluster.check(outcome, sent, attempted=["warm"], timeout=300)


@row("20", "10,000 messages queued at start-up")
async def backlog(env: Env) -> Outcome:
    outcome = Outcome("20", SCENARIOS["20"][0])
    async with Cluster(env.rabbitmq, env.redis, env.work_dir) as cluster:
        first = await cluster.start_workers(1)  # declares the queues and bindings
        first[0].signal(signal.SIGTERM)
        await asyncio.to_thread(first[0].process.wait, 60)
        client = await cluster.client()
        count = env.scale(10_000, 3000)
        calls = await publish_credits(client, keys(100), count, prefix="q", lanes=32)
        began = time.monotonic()
        cluster.start_worker()

        async def first_handled() -> float:
            while cluster.invocations() == 0:  # noqa: ASYNC110 - a file can only be polled
                await asyncio.sleep(0.05)
            return time.monotonic() - began

        outcome.notes["first handled after s"] = round(await first_handled(), 2)
        await asyncio.sleep(2.0)
        for _ in range(2):
            cluster.start_worker()
        peak = 0.0
        checker = asyncio.ensure_future(cluster.check(outcome, calls.sent, timeout=300))
        while not checker.done():
            peak = max(peak, *(_rss_mb(w.process.pid) for w in cluster.live))
            await asyncio.sleep(0.2)
        checked = checker.result()
        outcome.notes["drained in s"] = round(time.monotonic() - began, 1)
        outcome.notes["worker RSS peak MB"] = round(peak, 1)
        fill(outcome, calls)
        return checked

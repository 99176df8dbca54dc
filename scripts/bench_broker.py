"""Benchmark the broker runtime against raw aio-pika doing the same AMQP exchanges.

Both sides run cross-process on one private RabbitMQ (quorum queues, as the runtime declares by
default) started for the run, with a private Redis for the runtime (``tests/servers.py``):

ours
    A worker subprocess (``python -m agnext_broker worker --app bench_agents:register``) hosts
    the agents of ``scripts/bench_agents.py``: ``echo`` (``@rpc`` ``Ping`` -> ``Pong``, and the
    count of handled events by RPC) and ``sink`` (an ``@event`` handler counting ``Tick``s on
    topic type ``ticks``). This process drives it through a client ``BrokerAgentRuntime`` that
    registers nothing.
raw
    A responder subprocess (``scripts/bench_raw_responder.py``) consumes a durable quorum queue
    with manual acks and answers each request with a persistent, confirmed reply to the caller's
    reply queue (correlation id), acking after the confirm. This process publishes persistent
    requests with publisher confirms and ``mandatory`` to a topic exchange bound to that queue
    and waits for the correlated reply. Events are persistent confirmed publishes to a second
    quorum queue whose consumer acks each one and reports its count by RPC.
rawp
    The same, over as many queues per kind as ours has partitions per agent type (one consumer
    each), keys spread over them by the runtime's partition hash: the cost of the partitioned
    topology itself, apart from the runtime's own work.

Scenarios, each measured after a warm-up:
  1. sequential round trips: round trips/s, p50 and p99 latency
  2. 64 requests in flight, to 64 different agent keys, each refilled as soon as it returns:
     msgs/s
  3. N events published (64 confirmed publishes in flight, topic sources spread over 64 keys),
     until the consumer has handled all N (its count polled by RPC every 20 ms): deliveries/s

Every repetition uses fresh namespaces and fresh subprocesses, the order of the sides reverses
every repetition, and the reported numbers are medians over the repetitions. Goals: ours/raw
>= 0.85 on 64-in-flight and publish throughput, p50 latency ours/raw <= 1.2; the table shows
them against both baselines.

A second table gives the CPU time per message of each process (client, server subprocess,
RabbitMQ, Redis; from /proc) and of the rest of the machine: on a shared machine, a measurement
during which other processes kept more than a quarter of a core busy is flagged as noisy.

Run from the repository root (needs rabbitmq-server and redis-server, as the tests do)::

    .venv/bin/python scripts/bench_broker.py                 # full run, 3 repetitions (~3 min)
    .venv/bin/python scripts/bench_broker.py --quick         # ~30 s smoke run
    .venv/bin/python scripts/bench_broker.py --repeats 5 --json
    .venv/bin/python scripts/bench_broker.py --partitions 1   # ours and rawp on one queue

Profiling (the ratios mean little then)::

    .venv/bin/python scripts/bench_broker.py --quick --sides ours --scenarios seq \\
        --profile /tmp/prof      # cProfile: server subprocess and client, .prof files
    .venv/bin/python scripts/bench_broker.py --quick --sides ours --scenarios publish \\
        --py-spy /tmp/spy        # py-spy (pip install py-spy) on both processes, per scenario
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import ctypes
import gc
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Protocol

import aio_pika
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractIncomingMessage
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
for _path in (str(ROOT), str(SCRIPTS)):  # tests.servers, and the agents' module
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bench_agents as agents  # noqa: E402

import agnext_broker as ab  # noqa: E402
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings  # noqa: E402
from agnext_broker.application.broker._routing import partition_of  # noqa: E402
from tests.servers import RabbitMQServer, RedisServer  # noqa: E402

CONCURRENCY = 64
THROUGHPUT_GOAL = 0.85  # ours/raw, at least
LATENCY_GOAL = 1.2  # p50 ours/raw, at most
POLL_INTERVAL = 0.02  # seconds between event-count RPCs in scenario 3
READY_TIMEOUT = 60.0
NOISY_CORES = 0.25  # CPU used by other processes during a measurement worth a warning
STOP_TIMEOUT = 30.0  # a profiled subprocess writes its profile before it exits
RPC_TIMEOUT = 30.0  # the runtime's default rpc_timeout, for the raw side too
COUNTER_KEY = "counter"
SCENARIO_NAMES = ("seq", "inflight", "publish")
SIDES = ("ours", "raw", "rawp")
BASELINES = ("raw", "rawp")  # what ours is divided by


class BenchError(RuntimeError):
    """A wrong reply or count, or a subprocess that failed."""


# -- subprocesses ----------------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: SIGTERM the child when this process dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    args: list[str], log: IO[bytes], env: dict[str, str], *, read_stdout: bool
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if read_stdout else log,
        stderr=log,
        start_new_session=True,  # a Ctrl-C reaches this process only; it stops the others
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    _children.append(proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (a clean drain, and a profile written), then SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
    with contextlib.suppress(ValueError):
        _children.remove(proc)


def stop_all_children() -> None:
    for proc in list(_children):
        stop_process(proc)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without AGNEXT_* (both sides get the same defaults)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGNEXT_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SCRIPTS), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def log_tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def check_alive(proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    if proc.poll() is not None:
        raise BenchError(f"{what} exited with {proc.returncode}:\n{log_tail(log)}")


def wait_ready_line(proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Wait until the subprocess prints ``ready`` on its stdout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], 0.1)
        if readable:
            line = proc.stdout.readline()
            if line.strip() == b"ready":
                return
            if not line:
                break
        check_alive(proc, what, log)
    check_alive(proc, what, log)
    raise BenchError(f"{what} did not get ready within {READY_TIMEOUT:g} s:\n{log_tail(log)}")


# -- the two clients, one interface ----------------------------------------------------------


class Caller(Protocol):
    async def call(self, key: str, n: int) -> int:
        """A request to agent key ``key``; returns the echoed ``n``."""

    async def count(self) -> int:
        """Events the server side has handled so far."""

    async def publish(self, source: str, n: int) -> None:
        """A confirmed event about ``source``."""

    async def close(self) -> None: ...


class OursCaller:
    """A client ``BrokerAgentRuntime``: registers nothing, only sends and publishes."""

    def __init__(self, runtime: BrokerAgentRuntime) -> None:
        self._runtime = runtime
        self._ids: dict[str, ab.AgentId] = {}
        self._counter = ab.AgentId(agents.ECHO_TYPE, COUNTER_KEY)

    @classmethod
    async def connect(cls, amqp_url: str, redis_url: str, namespace: str) -> OursCaller:
        settings = BrokerSettings(amqp_url=amqp_url, redis_url=redis_url, namespace=namespace)
        runtime = BrokerAgentRuntime(settings)
        for message_class in (
            agents.Ping, agents.Pong, agents.Tick, agents.CountQuery, agents.CountReply,
        ):  # fmt: skip
            runtime.add_message_serializer(ab.try_get_known_serializers_for_type(message_class))
        await runtime.start()
        return cls(runtime)

    async def call(self, key: str, n: int) -> int:
        target = self._ids.get(key)
        if target is None:
            target = self._ids[key] = ab.AgentId(agents.ECHO_TYPE, key)
        reply = await self._runtime.send_message(agents.Ping(n), target)
        return int(reply.n)

    async def count(self) -> int:
        reply = await self._runtime.send_message(agents.CountQuery(), self._counter)
        return int(reply.count)

    async def publish(self, source: str, n: int) -> None:
        await self._runtime.publish_message(agents.Tick(n), ab.TopicId(agents.TICKS_TOPIC, source))

    async def close(self) -> None:
        await self._runtime.close()


class RawCaller:
    """aio-pika as the runtime uses it: a publishing connection with confirms and returns
    raised, a consuming connection with an exclusive reply queue (no acks). A key's requests and
    a source's events go to queue ``partition_of(key, queues)`` of their kind."""

    def __init__(
        self,
        connections: list[AbstractConnection],
        direct: AbstractExchange,
        events: AbstractExchange,
        reply_to: str,
        queues: int,
    ) -> None:
        self._connections = connections
        self._direct = direct
        self._events = events
        self._reply_to = reply_to
        self._queues = queues
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @classmethod
    async def connect(cls, amqp_url: str, prefix: str, queues: int) -> RawCaller:
        publishing = await aio_pika.connect(amqp_url)
        consuming = await aio_pika.connect(amqp_url)
        channel = await publishing.channel(publisher_confirms=True, on_return_raises=True)
        direct = await channel.get_exchange(f"{prefix}.direct", ensure=False)
        events = await channel.get_exchange(f"{prefix}.events", ensure=False)
        consume_channel = await consuming.channel()
        reply_queue = await consume_channel.declare_queue(
            f"{prefix}.reply.{uuid.uuid4().hex[:12]}", exclusive=True, auto_delete=True
        )
        caller = cls([publishing, consuming], direct, events, reply_queue.name, queues)
        await reply_queue.consume(caller._on_reply, no_ack=True)
        return caller

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is not None and not future.done():
            future.set_result(json.loads(message.body))

    async def _request(self, body: dict[str, Any], routing_key: str) -> dict[str, Any]:
        correlation = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = future
        try:
            message = Message(
                json.dumps(body).encode(),
                content_type="application/json",
                delivery_mode=DeliveryMode.PERSISTENT,
                message_id=correlation,
                correlation_id=correlation,
                reply_to=self._reply_to,
            )
            await self._direct.publish(message, routing_key, mandatory=True)
            return await asyncio.wait_for(future, RPC_TIMEOUT)
        finally:
            self._pending.pop(correlation, None)

    async def call(self, key: str, n: int) -> int:
        reply = await self._request({"n": n}, f"echo.{partition_of(key, self._queues)}")
        return int(reply["n"])

    async def count(self) -> int:
        queue = partition_of(COUNTER_KEY, self._queues)
        reply = await self._request({"count": True}, f"echo.{queue}")
        return int(reply["count"])

    async def publish(self, source: str, n: int) -> None:
        message = Message(
            json.dumps({"n": n}).encode(),
            content_type="application/json",
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=uuid.uuid4().hex,
        )
        await self._events.publish(
            message, f"ticks.{partition_of(source, self._queues)}", mandatory=False
        )

    async def close(self) -> None:
        for connection in reversed(self._connections):
            await connection.close()


# -- scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    seq: int
    inflight: int
    publish: int

    def warmup(self, scenario: str) -> int:
        if scenario == "seq":
            return max(self.seq // 20, 50)
        return 2 * CONCURRENCY  # every key at least once: agents activated, caches warm


async def in_lanes(count: int, lanes: int, step: Callable[[int, int], Awaitable[None]]) -> None:
    """``step(lane, i)`` for every ``i < count``, ``lanes`` at a time: a lane takes the next
    ``i`` as soon as its previous step is done, so ``lanes`` steps are always in flight."""
    taken = 0

    async def lane(k: int) -> None:
        nonlocal taken
        while taken < count:
            i = taken
            taken += 1
            await step(k, i)

    await asyncio.gather(*(lane(k) for k in range(lanes)))


async def sequential(caller: Caller, n: int, warmup: int, probe: Probe) -> dict[str, float]:
    for i in range(warmup):
        await caller.call("seq", i)
    latencies = [0.0] * n
    clock = time.perf_counter
    async with probe:
        start = clock()
        for i in range(n):
            t0 = clock()
            got = await caller.call("seq", i)
            latencies[i] = clock() - t0
            if got != i:
                raise BenchError(f"reply {got} to request {i}")
        elapsed = clock() - start
    return {
        "seq_rps": n / elapsed,
        "seq_p50_us": statistics.median(latencies) * 1e6,
        "seq_p99_us": statistics.quantiles(latencies, n=100)[98] * 1e6,
    }


async def in_flight(caller: Caller, n: int, warmup: int, probe: Probe) -> dict[str, float]:
    async def step(lane: int, i: int) -> None:
        got = await caller.call(f"c{lane}", i)
        if got != i:
            raise BenchError(f"reply {got} to request {i}")

    await in_lanes(warmup, CONCURRENCY, step)
    async with probe:
        start = time.perf_counter()
        await in_lanes(n, CONCURRENCY, step)
        elapsed = time.perf_counter() - start
    return {"inflight_mps": n / elapsed}


async def wait_for_count(caller: Caller, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (count := await caller.count()) < target:  # another process counts
        if time.monotonic() > deadline:
            raise BenchError(f"only {count} of {target} events handled after {timeout:g} s")
        await asyncio.sleep(POLL_INTERVAL)
    if count != target:
        raise BenchError(f"{count} events handled, {target} published: duplicates")


async def publish(caller: Caller, n: int, warmup: int, probe: Probe) -> dict[str, float]:
    async def step(lane: int, i: int) -> None:
        await caller.publish(f"s{i % CONCURRENCY}", i)

    base = await caller.count()
    await in_lanes(warmup, CONCURRENCY, step)
    await wait_for_count(caller, base + warmup, 60.0)
    async with probe:
        start = time.perf_counter()
        await in_lanes(n, CONCURRENCY, step)
        published = time.perf_counter() - start
        await wait_for_count(caller, base + warmup + n, max(60.0, n / 50))
        elapsed = time.perf_counter() - start
    return {"publish_dps": n / elapsed, "publish_mps": n / published}


Scenario = Callable[["Caller", int, int, "Probe"], Awaitable[dict[str, float]]]
SCENARIOS: dict[str, Scenario] = {"seq": sequential, "inflight": in_flight, "publish": publish}


@dataclass(frozen=True)
class Metric:
    label: str
    higher_better: bool
    goal: float | None  # on ours/raw: at least (throughput) or at most (latency)


METRICS: dict[str, Metric] = {
    "seq_rps": Metric("1. sequential round trips/s", True, None),
    "seq_p50_us": Metric("1. sequential p50 latency (us)", False, LATENCY_GOAL),
    "seq_p99_us": Metric("1. sequential p99 latency (us)", False, None),
    "inflight_mps": Metric(f"2. {CONCURRENCY} in flight, msgs/s", True, THROUGHPUT_GOAL),
    "publish_dps": Metric("3. publish -> all handled, deliveries/s", True, THROUGHPUT_GOAL),
    "publish_mps": Metric("3. (confirmed publishes/s alone)", True, None),
}


# -- profiling -------------------------------------------------------------------------------


PROCESS_PARTS = ("client", "server", "rabbitmq", "redis")
CPU_PARTS = (*PROCESS_PARTS, "other")  # other: the rest of the machine, kernel softirqs too


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process, all its threads (Linux ``/proc``; else 0)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent busy so far (Linux ``/proc/stat``; else 0)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Probe:
    """Around a scenario's measured part: the CPU time of every process involved, and
    optionally cProfile of this process, or py-spy on this process and the server subprocess.

    Args:
        pids: ``client``, ``server``, ``rabbitmq`` and ``redis`` process ids.
    """

    def __init__(
        self, mode: str | None, out_dir: Path | None, name: str, pids: dict[str, int | None]
    ) -> None:
        self._mode = mode
        self._out_dir = out_dir
        self._name = name
        self._pids = pids
        self._profile: cProfile.Profile | None = None
        self._spies: list[asyncio.subprocess.Process] = []
        self._cpu_before: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # part -> CPU seconds during the measured part
        self.wall = 0.0
        self._started = 0.0

    def _cpu_now(self) -> dict[str, float]:
        now = {part: cpu_seconds(self._pids.get(part)) for part in PROCESS_PARTS}
        now["other"] = machine_busy_seconds() - sum(now.values())
        return now

    async def __aenter__(self) -> Probe:
        if self._mode == "cprofile":
            self._profile = cProfile.Profile()
            self._profile.enable()
        elif self._mode == "py-spy":
            assert self._out_dir is not None
            for who in ("client", "server"):
                pid = self._pids[who]
                out = self._out_dir / f"{self._name}-{who}.txt"
                args = ["record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
                spy = await asyncio.create_subprocess_exec(
                    py_spy(),
                    *args,
                    "--output",
                    str(out),
                    "--nonblocking",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                self._spies.append(spy)
            await asyncio.sleep(1.0)  # py-spy attaches
        self._cpu_before = self._cpu_now()
        self._started = time.perf_counter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        after = self._cpu_now()
        self.wall = time.perf_counter() - self._started
        self.cpu = {part: after[part] - self._cpu_before[part] for part in CPU_PARTS}
        if self._profile is not None:
            self._profile.disable()
            assert self._out_dir is not None
            self._profile.dump_stats(self._out_dir / f"{self._name}-client.prof")
            self._profile = None
        for spy in self._spies:
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)  # py-spy writes its output, then exits
        for spy in self._spies:
            try:
                await asyncio.wait_for(spy.wait(), 30)
            except TimeoutError:
                spy.kill()
                await spy.wait()
        self._spies = []


def py_spy() -> str:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("py-spy", path=search)
    if found is None:
        raise BenchError("py-spy is not installed: .venv/bin/python -m pip install py-spy")
    return found


# -- one side, one repetition ----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What every measurement needs to know."""

    amqp_url: str
    redis_url: str
    sizes: Sizes
    scenarios: tuple[str, ...]
    log_dir: Path
    profile: str | None  # None, "cprofile" or "py-spy"
    profile_dir: Path | None
    partitions: int  # of ours' agent types, and queues per kind of rawp
    server_pids: dict[str, int | None]  # rabbitmq, redis

    def queues(self, side: str) -> int:
        """Queues per kind of a raw side."""
        return self.partitions if side == "rawp" else 1


def server_command(run: Run, side: str, rep: int, namespace: str) -> list[str]:
    prefix = [sys.executable]
    if run.profile == "cprofile":
        assert run.profile_dir is not None
        out = run.profile_dir / f"{side}-server-rep{rep}.prof"
        prefix += ["-m", "cProfile", "-o", str(out)]
    if side == "ours":
        return [
            *prefix, "-m", "agnext_broker", "worker", "--app", "bench_agents:register",
            "--log-level", "warning",
        ]  # fmt: skip
    responder = str(SCRIPTS / "bench_raw_responder.py")
    return [*prefix, responder, run.amqp_url, namespace, "--queues", str(run.queues(side))]


async def connect_ours(
    run: Run, namespace: str, proc: subprocess.Popen[bytes], log: Path
) -> OursCaller:
    caller = await OursCaller.connect(run.amqp_url, run.redis_url, namespace)
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while True:  # the worker is ready once it answers
            try:
                await caller.count()
                return caller
            except ab.UndeliverableException:
                check_alive(proc, "the worker", log)
                if time.monotonic() > deadline:
                    raise BenchError(f"the worker did not get ready:\n{log_tail(log)}") from None
                await asyncio.sleep(0.1)
    except BaseException:
        await caller.close()
        raise


async def drive(
    run: Run, side: str, rep: int, namespace: str, proc: subprocess.Popen[bytes], log: Path
) -> dict[str, float]:
    caller: Caller
    if side == "ours":
        caller = await connect_ours(run, namespace, proc, log)
    else:
        caller = await RawCaller.connect(run.amqp_url, namespace, run.queues(side))
    results: dict[str, float] = {}
    try:
        for scenario in run.scenarios:
            n = getattr(run.sizes, scenario)
            pids = {"client": os.getpid(), "server": proc.pid, **run.server_pids}
            probe = Probe(run.profile, run.profile_dir, f"{side}-{scenario}-rep{rep}", pids)
            gc.collect()
            result = await SCENARIOS[scenario](caller, n, run.sizes.warmup(scenario), probe)
            check_alive(proc, f"the {side} server", log)
            shown = ", ".join(f"{k}={v:,.0f}" for k, v in result.items())
            cpu = " ".join(f"{part}={probe.cpu[part] / n * 1e6:,.0f}" for part in CPU_PARTS)
            print(f"[{rep + 1}] {side:<4} {scenario:<8} {shown}; CPU us/msg {cpu}", file=sys.stderr)
            other_cores = probe.cpu["other"] / probe.wall if probe.wall else 0.0
            if other_cores > NOISY_CORES:
                print(
                    f"    warning: the rest of the machine kept {other_cores:.2f} cores busy "
                    "meanwhile: this measurement is noisy",
                    file=sys.stderr,
                )
            results.update(result)
            for part in CPU_PARTS:
                results[f"{scenario}_cpu_{part}"] = probe.cpu[part] / n * 1e6
    finally:
        await caller.close()
    return results


def measure(run: Run, side: str, rep: int) -> dict[str, float]:
    """Start the side's server subprocess in a fresh namespace, run the scenarios, stop it."""
    namespace = f"bench{rep}{side}{uuid.uuid4().hex[:8]}"
    log = run.log_dir / f"{namespace}.log"
    extra = {}
    if side == "ours":
        extra = {
            "AGNEXT_AMQP_URL": run.amqp_url,
            "AGNEXT_REDIS_URL": run.redis_url,
            "AGNEXT_NAMESPACE": namespace,
            "AGNEXT_PARTITIONS": str(run.partitions),
        }
    with open(log, "wb") as log_file:
        command = server_command(run, side, rep, namespace)
        proc = spawn(command, log_file, clean_env(**extra), read_stdout=side != "ours")
    try:
        if side != "ours":
            wait_ready_line(proc, "the raw responder", log)
        return asyncio.run(drive(run, side, rep, namespace, proc, log))
    finally:
        stop_process(proc)


def run_all(run: Run, sides: list[str], repeats: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {}
    for rep in range(repeats):
        order = sides if rep % 2 == 0 else list(reversed(sides))
        for side in order:
            for metric, value in measure(run, side, rep).items():
                samples.setdefault(metric, {s: [] for s in sides})[side].append(value)
    return samples


# -- report ----------------------------------------------------------------------------------


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for metric, by_side in samples.items():
        spec = METRICS.get(metric, Metric(f"CPU us/msg: {metric}", False, None))
        row: dict[str, Any] = {"label": spec.label, "samples": by_side}
        for side, values in by_side.items():
            row[side] = statistics.median(values)
        for baseline in BASELINES:
            if "ours" in row and row.get(baseline):
                ratio = row["ours"] / row[baseline]
                row[f"ratio_{baseline}"] = ratio
                if spec.goal is not None:
                    row["goal"] = spec.goal
                    reached = ratio >= spec.goal if spec.higher_better else ratio <= spec.goal
                    row[f"pass_{baseline}"] = reached
        summary[metric] = row
    return summary


UNFAIR = """\
"other" is CPU used by the rest of the machine (other processes, kernel softirqs) meanwhile.
Not the same work on both sides:
- ours also does per message: CloudEvents headers (~8 ce-* headers) encoded and decoded, pydantic
  (de)serialization, a turn gate, and for an RPC a Redis Lua write of the agent's record (applied
  ids, kept responses) while the reply goes out, before the ack (the benchmark's agents keep no
  state, so their events need no write); raw does json.loads/dumps and nothing else.
- ours spreads each agent type over {partitions} partition queue(s) (quorum, single-active-consumer,
  one consumer each, prefetch 64); raw has one quorum queue per kind, rawp {partitions} (same
  arguments, one consumer each, keys spread by the same hash).
- both publish persistent messages with publisher confirms (requests mandatory) on a publishing
  connection of their own, consume on another, and reply persistent + confirmed, then ack."""


def print_table(summary: dict[str, dict[str, Any]], sides: list[str], partitions: int) -> None:
    baselines = [b for b in BASELINES if b in sides]
    names = {"raw": "raw 1 queue", "rawp": f"raw {partitions} queues"}
    columns = "".join(f" | {names[b]:>14} | {'ours/' + b:>10}" for b in baselines)
    header = f"{'scenario':<42} | {'ours':>10}{columns} | goal"
    print(header)
    print("-" * len(header))
    for metric, row in summary.items():
        spec = METRICS.get(metric)
        if spec is None:
            continue
        line = f"{row['label']:<42} | " + (f"{row['ours']:>10,.0f}" if "ours" in row else "-" * 10)
        verdicts = []
        for baseline in baselines:
            ratio = row.get(f"ratio_{baseline}")
            line += f" | {row[baseline]:>14,.0f} | " + (
                f"{ratio:>9.2f}x" if ratio is not None else f"{'-':>10}"
            )
            if f"pass_{baseline}" in row:
                verdict = "PASS" if row[f"pass_{baseline}"] else "below"
                verdicts.append(f"{verdict} vs {baseline}")
        if verdicts:
            sign = ">=" if spec.higher_better else "<="
            line += f" | {', '.join(verdicts)} ({sign} {spec.goal:g})"
        print(line)
    if "ours" in sides and baselines:
        print("ours/raw is ours divided by raw for every row: for latency, lower is better.")
    print()
    print_cpu_table(summary, sides)
    if "ours" in sides and baselines:
        print()
        print(UNFAIR.format(partitions=partitions))


RATE_OF = {"seq": "seq_rps", "inflight": "inflight_mps", "publish": "publish_dps"}


def print_cpu_table(summary: dict[str, dict[str, Any]], sides: list[str]) -> None:
    """CPU time per message of each process (medians), how many cores they kept busy, and what
    the rest of the machine used meanwhile."""
    parts = " | ".join(f"{part:>8}" for part in PROCESS_PARTS)
    header = (
        f"{'CPU time per message (us)':<30} | {parts} | {'total':>7} | cores busy | {'other':>7}"
    )
    print(header)
    print("-" * len(header))
    for scenario, rate_metric in RATE_OF.items():
        if rate_metric not in summary:
            continue
        label = METRICS[rate_metric].label.split(",")[0]
        for side in sides:
            values = [summary[f"{scenario}_cpu_{part}"][side] for part in PROCESS_PARTS]
            total = sum(values)
            busy = total * summary[rate_metric][side] / 1e6
            other = summary[f"{scenario}_cpu_other"][side]
            shown = " | ".join(f"{v:>8,.0f}" for v in values)
            print(
                f"{label[:24]:<24} {side:<5} | {shown} | {total:>7,.0f} | {busy:>10.2f} | "
                f"{other:>7,.0f}"
            )


async def server_versions(amqp_url: str, redis_url: str) -> dict[str, str]:
    connection = await aio_pika.connect(amqp_url)
    try:
        assert connection.transport is not None
        properties = connection.transport.connection.server_properties
        rabbitmq = properties.get("version", b"?")
    finally:
        await connection.close()
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        info = await redis.info("server")
    finally:
        await redis.aclose()
    return {
        "rabbitmq": rabbitmq.decode() if isinstance(rabbitmq, bytes) else str(rabbitmq),
        "redis": str(info.get("redis_version", "?")),
        "aio_pika": aio_pika.__version__,
        "agnext_broker": ab.__version__,
        "python": sys.version.split()[0],
    }


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt wherever the code is, so that everything
    unwinds and the subprocesses and servers are stopped. (Not asyncio.run's SIGINT handling,
    which cancels the main task: on Python < 3.12 asyncio.wait_for can swallow that
    cancellation when a reply arrives at the same moment.)"""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument("--repeats", type=int, help="repetitions per side (default 3, quick 1)")
    parser.add_argument("--seq", type=int, help="sequential round trips (default 2000)")
    parser.add_argument("--inflight", type=int, help="requests, 64 in flight (default 5000)")
    parser.add_argument("--publish", type=int, help="events published (default 5000)")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help="comma-separated: ours, raw (one queue per kind), rawp (as many queues as ours has "
        "partitions); default all three",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIO_NAMES),
        help="comma-separated: seq, inflight, publish (default all)",
    )
    parser.add_argument(
        "--partitions", type=int, help="partitions of ours' agent types (runtime default 16)"
    )
    profiling = parser.add_mutually_exclusive_group()
    profiling.add_argument(
        "--profile", type=Path, metavar="DIR", help="cProfile the servers and the client into DIR"
    )
    profiling.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="py-spy both processes per scenario into DIR"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    if not sides or set(sides) - set(SIDES):
        parser.error(f"--sides takes {', '.join(SIDES)}")
    if not scenarios or set(scenarios) - set(SCENARIO_NAMES):
        parser.error(f"--scenarios takes {', '.join(SCENARIO_NAMES)}")
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = Sizes(
        seq=args.seq or (300 if args.quick else 2_000),
        inflight=args.inflight or (1_000 if args.quick else 5_000),
        publish=args.publish or (1_000 if args.quick else 5_000),
    )
    profile_dir: Path | None = args.profile or args.py_spy
    profile = "cprofile" if args.profile else "py-spy" if args.py_spy else None
    if profile == "py-spy":
        py_spy()  # fail early
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    partitions = args.partitions or BrokerSettings().partitions

    log_dir = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    failed = True
    try:
        with signals_interrupt():
            started = time.monotonic()
            print("starting private RabbitMQ and Redis...", file=sys.stderr)
            with RabbitMQServer() as rabbit, RedisServer() as redis:
                versions = asyncio.run(server_versions(rabbit.amqp_url, redis.url))
                print(
                    f"RabbitMQ {versions['rabbitmq']}, Redis {versions['redis']}, aio-pika "
                    f"{versions['aio_pika']}; {asdict(sizes)}, repeats={repeats}, "
                    f"{CONCURRENCY} in flight",
                    file=sys.stderr,
                )
                run = Run(
                    rabbit.amqp_url, redis.url, sizes, scenarios, log_dir, profile, profile_dir,
                    partitions, {"rabbitmq": rabbit.pid, "redis": redis.pid},
                )  # fmt: skip
                try:
                    samples = run_all(run, sides, repeats)
                finally:
                    stop_all_children()
            print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
        failed = False
    except BenchError as e:
        print(f"FAILED: {e}\n(subprocess logs kept in {log_dir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        failed = False
        return 130
    except Exception:
        traceback.print_exc()
        print(f"FAILED (subprocess logs kept in {log_dir})", file=sys.stderr)
        return 1
    finally:
        stop_all_children()
        if not failed:
            shutil.rmtree(log_dir, ignore_errors=True)
    summary = summarize(samples)
    if args.json:
        config = {
            **asdict(sizes),
            "repeats": repeats,
            "concurrency": CONCURRENCY,
            "sides": sides,
            "partitions": partitions,
            "scenarios": list(scenarios),
            "throughput_goal": THROUGHPUT_GOAL,
            "latency_goal": LATENCY_GOAL,
            "versions": versions,
        }
        print(json.dumps({"config": config, "results": summary}, indent=2))
    else:
        print_table(summary, sides, partitions)
    return 0


if __name__ == "__main__":
    sys.exit(main())

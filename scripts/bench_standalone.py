"""Benchmark agnext_broker's standalone runtime against autogen-core's, side by side.

Both runtimes run the same agents (a RoutedAgent with an ``@rpc`` echo handler and one with an
``@event`` counting handler, on dataclass messages), defined once against each package's
classes with identical handler bodies. Every measurement gets a fresh runtime, is warmed up
first, and the order of the two sides alternates between repetitions. Reported numbers are
medians over the repetitions.

Scenarios:
  1. sequential send_message round trips from outside any agent (round trips/s, p50 latency)
  2. 64 sends in flight at once, each to its own agent key (msgs/s)
  3. publish to one subscribed agent, then stop_when_idle (deliveries/s, counts verified)
  4. publish to a topic ten agent types subscribe to (deliveries/s, counts verified)

The goal is ours >= 3x autogen-core on every row.

Run (needs the bench extra: ``pip install -e '.[bench]'``)::

    .venv/bin/python scripts/bench_standalone.py              # full run, 5 repetitions
    .venv/bin/python scripts/bench_standalone.py --quick      # short smoke run
    .venv/bin/python scripts/bench_standalone.py --repeats 9 --n 50000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import agnext_broker as ab

try:
    import autogen_core as ac
except ImportError:
    print("autogen-core is not installed; install the bench extra: pip install -e '.[bench]'")
    sys.exit(2)

GOAL = 3.0
CONCURRENCY = 64
FANOUT_TYPES = 10


# -- messages (plain dataclasses, shared by both sides) --------------------------------------


@dataclass
class Ping:
    n: int


@dataclass
class Pong:
    n: int


@dataclass
class Tick:
    n: int


# -- agents, once per package; the handler bodies are identical ------------------------------


class OursEcho(ab.RoutedAgent):
    @ab.rpc
    async def on_ping(self, message: Ping, ctx: ab.MessageContext) -> Pong:
        return Pong(message.n)


class OursSink(ab.RoutedAgent):
    def __init__(self, counts: Counter[str]) -> None:
        super().__init__("counts events")
        self._counts = counts

    @ab.event
    async def on_tick(self, message: Tick, ctx: ab.MessageContext) -> None:
        self._counts[self.id.type] += 1


class TheirsEcho(ac.RoutedAgent):
    @ac.rpc
    async def on_ping(self, message: Ping, ctx: ac.MessageContext) -> Pong:
        return Pong(message.n)


class TheirsSink(ac.RoutedAgent):
    def __init__(self, counts: Counter[str]) -> None:
        super().__init__("counts events")
        self._counts = counts

    @ac.event
    async def on_tick(self, message: Tick, ctx: ac.MessageContext) -> None:
        self._counts[self.id.type] += 1


@dataclass(frozen=True)
class Side:
    """One package's runtime and classes, so scenarios are written once."""

    name: str
    runtime: Callable[[], Any]
    echo: type[Any]
    sink: type[Any]
    agent_id: Callable[[str, str], Any]
    topic_id: Callable[[str, str], Any]
    type_subscription: Callable[[str, str], Any]


OURS = Side(
    "ours", ab.SingleThreadedAgentRuntime, OursEcho, OursSink, ab.AgentId, ab.TopicId,
    ab.TypeSubscription,
)  # fmt: skip
THEIRS = Side(
    "autogen-core", ac.SingleThreadedAgentRuntime, TheirsEcho, TheirsSink, ac.AgentId,
    ac.TopicId, ac.TypeSubscription,
)  # fmt: skip


class CountMismatch(RuntimeError):
    pass


# -- scenarios: each returns {metric: value} for one fresh runtime ---------------------------


async def _echo_runtime(side: Side) -> Any:
    runtime = side.runtime()
    await side.echo.register(runtime, "echo", lambda: side.echo("echo"))
    runtime.start()  # autogen-core: a send before start() would wait forever
    return runtime


async def sequential(side: Side, n: int, warmup: int) -> dict[str, float]:
    runtime = await _echo_runtime(side)
    target = side.agent_id("echo", "default")
    for i in range(warmup):
        await runtime.send_message(Ping(i), target)
    latencies = [0.0] * n
    clock = time.perf_counter
    start = clock()
    for i in range(n):
        t0 = clock()
        reply = await runtime.send_message(Ping(i), target)
        latencies[i] = clock() - t0
        if reply.n != i:
            raise CountMismatch(f"{side.name}: reply {reply.n} to ping {i}")
    elapsed = clock() - start
    await runtime.close()
    return {"send_rps": n / elapsed, "send_p50_us": statistics.median(latencies) * 1e6}


async def concurrent(side: Side, n: int, warmup: int) -> dict[str, float]:
    runtime = await _echo_runtime(side)
    per_worker = max(n // CONCURRENCY, 1)

    async def worker(key: int, count: int) -> int:
        target = side.agent_id("echo", f"k{key}")
        for i in range(count):
            reply = await runtime.send_message(Ping(i), target)
            if reply.n != i:
                raise CountMismatch(f"{side.name}: reply {reply.n} to ping {i}")
        return count

    async def all_workers(count: int) -> int:
        # CONCURRENCY workers, one key each: always CONCURRENCY sends in flight.
        return sum(await asyncio.gather(*(worker(k, count) for k in range(CONCURRENCY))))

    await all_workers(max(warmup // CONCURRENCY, 1))  # also activates all 64 agents
    start = time.perf_counter()
    done = await all_workers(per_worker)
    elapsed = time.perf_counter() - start
    await runtime.close()
    return {"concurrent_mps": done / elapsed}


async def _publish_run(side: Side, n: int, warmup: int, types: int) -> float:
    runtime = side.runtime()
    counts: Counter[str] = Counter()
    names = [f"sink{i}" for i in range(types)]
    for name in names:
        await side.sink.register(
            runtime, name, lambda: side.sink(counts), skip_class_subscriptions=True
        )
        await runtime.add_subscription(side.type_subscription("ticks", name))
    topic = side.topic_id("ticks", "default")

    async def publish_all(count: int) -> float:
        runtime.start()
        start = time.perf_counter()
        for i in range(count):
            await runtime.publish_message(Tick(i), topic)
        await runtime.stop_when_idle()
        elapsed = time.perf_counter() - start
        if counts != dict.fromkeys(names, count):
            raise CountMismatch(f"{side.name}: expected {count} per type, got {dict(counts)}")
        counts.clear()
        return elapsed

    await publish_all(warmup)
    elapsed = await publish_all(n)
    await runtime.close()
    return n * types / elapsed


async def publish_one(side: Side, n: int, warmup: int) -> dict[str, float]:
    return {"publish_dps": await _publish_run(side, n, warmup, 1)}


async def fan_out(side: Side, n: int, warmup: int) -> dict[str, float]:
    # N/FANOUT_TYPES publishes, so every scenario delivers about N messages.
    count, warm = max(n // FANOUT_TYPES, 1), max(warmup // FANOUT_TYPES, 1)
    return {"fanout_dps": await _publish_run(side, count, warm, FANOUT_TYPES)}


Scenario = Callable[[Side, int, int], Coroutine[Any, Any, dict[str, float]]]
SCENARIOS: list[tuple[str, Scenario]] = [
    ("sequential", sequential),
    ("concurrent", concurrent),
    ("publish", publish_one),
    ("fan-out", fan_out),
]
# metric key -> (table label, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "send_rps": ("1. send round trips/s", True),
    "send_p50_us": ("1. send p50 latency (us)", False),
    "concurrent_mps": (f"2. {CONCURRENCY} concurrent sends, msgs/s", True),
    "publish_dps": ("3. publish -> 1 agent, deliveries/s", True),
    "fanout_dps": (f"4. fan-out -> {FANOUT_TYPES} types, deliveries/s", True),
}


def measure(side: Side, scenario: Scenario, n: int, warmup: int) -> dict[str, float]:
    gc.collect()
    return asyncio.run(scenario(side, n, warmup))  # a fresh event loop per measurement


def run(n: int, warmup: int, repeats: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {m: {"ours": [], "theirs": []} for m in METRICS}
    for rep in range(repeats):
        order = [(OURS, "ours"), (THEIRS, "theirs")]
        if rep % 2:
            order.reverse()
        for label, scenario in SCENARIOS:
            for side, slot in order:
                result = measure(side, scenario, n, warmup)
                for metric, value in result.items():
                    samples[metric][slot].append(value)
                shown = ", ".join(f"{k}={v:,.1f}" for k, v in result.items())
                print(f"[{rep + 1}/{repeats}] {label:<10} {side.name:<12} {shown}", file=sys.stderr)
    return samples


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for metric, (label, higher_better) in METRICS.items():
        ours = statistics.median(samples[metric]["ours"])
        theirs = statistics.median(samples[metric]["theirs"])
        speedup = ours / theirs if higher_better else theirs / ours
        summary[metric] = {
            "label": label,
            "ours": ours,
            "theirs": theirs,
            "speedup": speedup,
            "pass": speedup >= GOAL,
            "samples": samples[metric],
        }
    return summary


def print_table(summary: dict[str, dict[str, Any]]) -> None:
    header = f"{'scenario':<38} | {'ours':>12} | {'autogen-core':>12} | {'ours/theirs*':>12} | goal"
    print(header)
    print("-" * len(header))
    for row in summary.values():
        verdict = "PASS" if row["pass"] else "below"
        print(
            f"{row['label']:<38} | {row['ours']:>12,.1f} | {row['theirs']:>12,.1f} | "
            f"{row['speedup']:>11.2f}x | {verdict} (>= {GOAL:g}x)"
        )
    print("* speedup: for latency it is theirs/ours, so > 1 always means ours is faster.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, help="repetitions per side (default 5, quick 3)")
    parser.add_argument("--n", type=int, default=None, help="messages per scenario")
    parser.add_argument("--quick", action="store_true", help="small N and 3 repeats")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    n = args.n or (2_000 if args.quick else 20_000)
    warmup = max(n // 20, CONCURRENCY)
    print(
        f"agnext_broker {ab.__version__} vs autogen-core {ac.__version__}: "
        f"n={n}, warmup={warmup}, repeats={repeats}",
        file=sys.stderr,
    )
    try:
        samples = run(n, warmup, repeats)
    except CountMismatch as e:
        print(f"COUNT MISMATCH: {e}", file=sys.stderr)
        return 1
    summary = summarize(samples)
    if args.json:
        config = {"n": n, "warmup": warmup, "repeats": repeats, "goal": GOAL}
        print(json.dumps({"config": config, "results": summary}, indent=2))
    else:
        print_table(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

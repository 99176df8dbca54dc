"""A caller that starts N ``publish_message`` calls at once and reports its own memory:

    python tests/chaos/burst.py <amqp_url> <redis_url> <namespace> <N>

prints one JSON line: confirmed, failed, RSS (MB) before, at its peak and after, median and p99
latency of a publish (ms), seconds in all. It needs nothing but the package (its ``Credit`` is
the ledger app's wire type), so it runs with another checkout's package too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import sys
import time
from dataclasses import dataclass

from agnext_broker import TopicId
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings

CREDITS_TOPIC = "credits"


@dataclass
class Credit:  # the ledger app's message, as it travels (tests/chaos/app.py)
    amount: int = 1
    nap: float = 0.0
    poison: bool = False
    exclusive: bool = False


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main(amqp_url: str, redis_url: str, namespace: str, count: int) -> dict[str, object]:
    values: dict[str, object] = {
        "amqp_url": amqp_url,
        "redis_url": redis_url,
        "namespace": namespace,
        "partitions": 8,
        "publish_timeout": 300.0,  # a version without this bound ignores it
    }
    model_fields = getattr(BrokerSettings, "model_fields", None)  # pydantic, or a dataclass before
    known = (
        set(model_fields)
        if model_fields is not None
        else {f.name for f in dataclasses.fields(BrokerSettings)}
    )
    settings = BrokerSettings(**{k: v for k, v in values.items() if k in known})
    runtime = BrokerAgentRuntime(settings)
    await runtime.start()
    await runtime.publish_message(Credit(), TopicId(CREDITS_TOPIC, "warm"), message_id="warm")
    gc.collect()
    before = rss_mb()
    peak = before
    latencies: list[float] = []
    failed = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.05)

    async def publish(index: int) -> None:
        nonlocal failed
        began = time.monotonic()
        try:
            topic = TopicId(CREDITS_TOPIC, f"k{index % 50}")
            await runtime.publish_message(Credit(), topic, message_id=f"b-{index}")
            latencies.append(time.monotonic() - began)
        except Exception:
            failed += 1

    sampler = asyncio.ensure_future(sample())
    started = time.monotonic()
    await asyncio.gather(*(publish(i) for i in range(count)))
    elapsed = time.monotonic() - started
    sampler.cancel()
    gc.collect()
    after = rss_mb()
    await runtime.stop()
    latencies.sort()
    return {
        "confirmed": len(latencies),
        "failed": failed,
        "caller RSS MB before": round(before, 1),
        "caller RSS MB peak": round(peak, 1),
        "caller RSS MB after": round(after, 1),
        "publish p50 ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        "publish p99 ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if latencies
        else None,
        "seconds": round(elapsed, 1),
    }


if __name__ == "__main__":
    url, redis_url, namespace, count = sys.argv[1:5]
    print(json.dumps(asyncio.run(main(url, redis_url, namespace, int(count)))), flush=True)

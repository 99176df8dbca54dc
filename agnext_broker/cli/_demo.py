"""``agnext-broker demo``: the tally example on the standalone runtime, narrated; or, given
RabbitMQ and Redis, a batch sent to workers of the example running on the broker runtime."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from .. import (
    AgentId,
    DefaultInterventionHandler,
    DropMessage,
    MessageContext,
    SingleThreadedAgentRuntime,
    UndeliverableException,
)
from ..application.broker import BrokerAgentRuntime, BrokerSettings
from ..examples import tally

EXAMPLE_APP = "agnext_broker.examples.tally:register"
COORDINATOR = AgentId("coordinator", "default")
REPORTER = AgentId("reporter", "default")


class Narrator(DefaultInterventionHandler):
    """Prints each message the agents exchange (the reporter polls are left out)."""

    def __init__(self) -> None:
        self.lines = 0

    async def on_send(
        self, message: Any, *, message_context: MessageContext, recipient: AgentId
    ) -> Any | type[DropMessage]:
        if not isinstance(message, tally.GetReport):
            self._say(f"send     {type(message).__name__:<12} -> {recipient}")
        return message

    async def on_publish(
        self, message: Any, *, message_context: MessageContext
    ) -> Any | type[DropMessage]:
        sender = message_context.sender or "main"
        detail = ""
        if isinstance(message, tally.WorkItem):
            detail = f"item {message.item_id} amount {message.amount}"
        elif isinstance(message, tally.ItemTallied):
            detail = f"total {message.total} after {message.count} item(s)"
        self._say(
            f"publish  {type(message).__name__:<12} -> {message_context.topic_id!s:<22} "
            f"from {sender!s:<16} {detail}"
        )
        return message

    def _say(self, line: str) -> None:
        self.lines += 1
        print(f"  {line}", flush=True)


async def run_demo(keys: list[str], items_per_key: int, *, quiet: bool = False) -> int:
    narrator = Narrator()
    runtime = SingleThreadedAgentRuntime(intervention_handlers=[] if quiet else [narrator])
    await tally.register(runtime)
    runtime.start()
    print(
        f"agnext-broker demo: standalone runtime, {len(keys)} key(s) x {items_per_key} item(s)",
        flush=True,
    )
    started = time.perf_counter()
    batch = tally.RunBatch(keys=keys, items_per_key=items_per_key)
    report: tally.Report = await runtime.send_message(batch, AgentId("coordinator", "default"))
    elapsed = time.perf_counter() - started
    await runtime.stop_when_idle()

    print(f"report from reporter/default after {elapsed * 1000:.1f} ms: {report.items} item(s)")
    for key in keys:
        count, total = report.counts.get(key, 0), report.totals.get(key, 0)
        print(f"  {key:<10} count {count:>4}  total {total:>6}")
    state = await runtime.save_state()
    print("saved state of the talliers (what the broker runtime keeps in Redis):")
    for agent_key in sorted(k for k in state if k.startswith("tallier/")):
        print(f"  {agent_key}: {json.dumps(state[agent_key], sort_keys=True)}")
    await runtime.close()
    expected = len(keys) * items_per_key
    if report.items != expected:
        print(f"error: expected {expected} tallied items, got {report.items}")
        return 1
    return 0


async def run_broker_demo(
    settings: BrokerSettings, keys: list[str], items_per_key: int, *, host_agents: bool
) -> int:
    """Send one batch to the example's coordinator on running workers (or on this process with
    ``host_agents``) and print the report; 0 if every item of this batch was tallied."""
    runtime = BrokerAgentRuntime(settings)
    if host_agents:
        await tally.register(runtime)
    await runtime.start()
    try:
        where = "this process and any other workers" if host_agents else "the running workers"
        print(
            f"agnext-broker demo: broker runtime, namespace {settings.namespace!r}, "
            f"{len(keys)} key(s) x {items_per_key} item(s) on {where}",
            flush=True,
        )
        before = await _first_report(runtime, settings.connect_timeout)
        started = time.perf_counter()
        batch = tally.RunBatch(
            keys=keys, items_per_key=items_per_key, timeout_s=max(5.0, settings.rpc_timeout - 5)
        )
        report: tally.Report = await runtime.send_message(batch, COORDINATOR)
        elapsed = time.perf_counter() - started
    finally:
        await runtime.stop()
        await runtime.close()
    tallied = report.items - before.items
    print(f"report from reporter/default after {elapsed * 1000:.1f} ms: {tallied} item(s)")
    for key in keys:
        count, total = report.counts.get(key, 0), report.totals.get(key, 0)
        print(f"  {key:<10} count {count:>4}  total {total:>6}  (over every batch so far)")
    print(f"the talliers' state is in Redis: agnext-broker inspect state tallier {keys[0]}")
    expected = len(keys) * items_per_key
    if tallied != expected:
        print(f"error: expected {expected} tallied items, got {tallied}")
        return 1
    return 0


async def _first_report(runtime: BrokerAgentRuntime, patience: float) -> tally.Report:
    """The reporter's report before the batch, waiting up to ``patience`` seconds for a worker
    of the example to be up (workers started just before the demo may still be joining)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            report: tally.Report = await runtime.send_message(tally.GetReport(), REPORTER)
            return report
        except UndeliverableException:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)

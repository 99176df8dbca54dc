"""Agents, messages and app functions for the broker runtime's integration tests.

Everything here is module-level so that the same classes serve an in-process
``BrokerAgentRuntime`` and ``agnext-broker worker --app tests.integration.apps:register_counter``
subprocesses (started with ``cwd`` and ``PYTHONPATH`` at the repository root).

Wire names are the class names (``Increment``, ``ReadCount``, ...): tests that talk to the agents
with another AMQP client write them by hand, as docs/wire-format.md says a foreign producer would.

``client_main`` is the entry point of the client subprocesses of the exactly-once tests:
``python -c "from tests.integration.apps import client_main; client_main()" --key K --count N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from agnext_broker import (
    AgentId,
    AgentRuntime,
    MessageContext,
    RoutedAgent,
    TopicId,
    TypeSubscription,
    event,
    message_handler,
    rpc,
)
from agnext_broker.application.broker import BrokerAgentRuntime, BrokerSettings

COUNTER_TYPE = "counter"
FRAGILE_TYPE = "fragile"
INCREMENTS_TOPIC = "increments"  # events to counter/<topic source>
COUNTED_TOPIC = "counted"  # what a counter publishes after an increment with announce=True
FRAGILE_TOPIC = "fragile-work"
RELAY_TYPE = "relay"
RELAYED_TOPIC = "relayed"  # events to relay/<topic source>
FORWARDER_TYPE = "forwarder"
FORWARDED_TOPIC = "forwarded"  # events to forwarder/<topic source>


# -- messages ----------------------------------------------------------------------------------


@dataclass
class Increment:
    amount: int = 1
    announce: bool = False


@dataclass
class ReadCount:
    pass


@dataclass
class GetStatus:
    pass


@dataclass
class Status:
    key: str
    count: int
    pid: int
    blobs: int = 0


@dataclass
class Counted:
    key: str
    count: int


@dataclass
class Nap:
    """Touch ``marker`` (a file path; empty for none), sleep, then answer with the status."""

    seconds: float
    marker: str = ""


@dataclass
class Explode:
    message: str
    builtin: bool = False


@dataclass
class Blob:
    data: str


class AppError(Exception):
    """Raised by ``Counter`` on ``Explode``; its qualified name travels as ce-agerrortype."""


# -- agents ------------------------------------------------------------------------------------


class Counter(RoutedAgent):
    """A counter that keeps its count (and how many blobs it saw) in its saved state."""

    def __init__(self) -> None:
        super().__init__("Counts increments")
        self.count = 0
        self.blobs = 0

    def _status(self) -> Status:
        return Status(key=self.id.key, count=self.count, pid=os.getpid(), blobs=self.blobs)

    @message_handler
    async def on_increment(self, message: Increment, ctx: MessageContext) -> int:
        self.count += message.amount
        if message.announce:
            await self.publish_message(
                Counted(key=self.id.key, count=self.count), TopicId(COUNTED_TOPIC, self.id.key)
            )
        return self.count

    @rpc
    async def on_get_count(self, message: ReadCount, ctx: MessageContext) -> int:
        return self.count

    @rpc
    async def on_get_status(self, message: GetStatus, ctx: MessageContext) -> Status:
        return self._status()

    @rpc
    async def on_nap(self, message: Nap, ctx: MessageContext) -> Status:
        if message.marker:
            await asyncio.to_thread(Path(message.marker).write_text, f"{os.getpid()}\n")
        await asyncio.sleep(message.seconds)
        return self._status()

    @rpc
    async def on_explode(self, message: Explode, ctx: MessageContext) -> int:
        if message.builtin:
            raise ValueError(message.message)
        raise AppError(message.message)

    @rpc
    async def on_blob(self, message: Blob, ctx: MessageContext) -> Status:
        self.blobs += 1
        return self._status()

    async def save_state(self) -> Mapping[str, Any]:
        return {"count": self.count, "blobs": self.blobs}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.count = int(state.get("count", 0))
        self.blobs = int(state.get("blobs", 0))


class Fragile(RoutedAgent):
    """An agent whose event handler always raises; ``attempts`` counts the calls per key (in
    this process)."""

    attempts: ClassVar[dict[str, int]] = {}

    def __init__(self) -> None:
        super().__init__("Always fails")

    @event
    async def on_increment(self, message: Increment, ctx: MessageContext) -> None:
        Fragile.attempts[self.id.key] = Fragile.attempts.get(self.id.key, 0) + 1
        raise RuntimeError(f"fragile agent {self.id.key} refuses increment {message.amount}")


class Relay(RoutedAgent):
    """Passes each ``Increment`` event on to ``counter/<its key>`` by RPC, then fails the first
    time it handles one (``failures`` counts those per key, in this process): the runtime runs
    the handler again, and the counter must count the increment once. Its state is how many
    increments it relayed."""

    failures: ClassVar[dict[str, int]] = {}

    def __init__(self) -> None:
        super().__init__("Relays increments, failing once after the first")
        self.relayed = 0

    @event
    async def on_increment(self, message: Increment, ctx: MessageContext) -> None:
        await self.send_message(Increment(message.amount), AgentId(COUNTER_TYPE, self.id.key))
        self.relayed += 1
        if not Relay.failures.get(self.id.key):
            Relay.failures[self.id.key] = 1
            raise RuntimeError("relay fails after passing the increment on")

    async def save_state(self) -> Mapping[str, Any]:
        return {"relayed": self.relayed}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.relayed = int(state.get("relayed", 0))


class Forwarder(RoutedAgent):
    """Passes each ``Increment`` event on to ``counter/<its key>`` by RPC; keeps no state."""

    def __init__(self) -> None:
        super().__init__("Forwards increments")

    @event
    async def on_increment(self, message: Increment, ctx: MessageContext) -> None:
        await self.send_message(Increment(message.amount), AgentId(COUNTER_TYPE, self.id.key))


# -- app functions (agnext-broker worker --app tests.integration.apps:<function>) ----------------


async def register_counter(runtime: AgentRuntime) -> None:
    """``counter`` agents, subscribed to topic type ``increments`` (source = agent key)."""
    await Counter.register(runtime, COUNTER_TYPE, Counter)
    await runtime.add_subscription(TypeSubscription(INCREMENTS_TOPIC, COUNTER_TYPE))


async def register_counter_only(runtime: AgentRuntime) -> None:
    """``counter`` agents with only the direct-message subscription (no topic)."""
    await Counter.register(runtime, COUNTER_TYPE, Counter)


async def register_counter_and_relay(runtime: AgentRuntime) -> None:
    """``counter`` agents, and ``relay`` agents subscribed to topic type ``relayed``."""
    await Counter.register(runtime, COUNTER_TYPE, Counter)
    await Relay.register(runtime, RELAY_TYPE, Relay)
    await runtime.add_subscription(TypeSubscription(RELAYED_TOPIC, RELAY_TYPE))


async def register_counter_and_forwarder(runtime: AgentRuntime) -> None:
    """``counter`` agents, and ``forwarder`` agents subscribed to topic type ``forwarded``."""
    await Counter.register(runtime, COUNTER_TYPE, Counter)
    await Forwarder.register(runtime, FORWARDER_TYPE, Forwarder)
    await runtime.add_subscription(TypeSubscription(FORWARDED_TOPIC, FORWARDER_TYPE))


async def register_counter_and_fragile(runtime: AgentRuntime) -> None:
    """``counter`` agents (topic ``increments``) and ``fragile`` agents (topic ``fragile-work``)."""
    await register_counter(runtime)
    await register_fragile(runtime)


async def register_fragile(runtime: AgentRuntime) -> None:
    await Fragile.register(runtime, FRAGILE_TYPE, Fragile)
    await runtime.add_subscription(TypeSubscription(FRAGILE_TOPIC, FRAGILE_TYPE))


# -- client subprocess ---------------------------------------------------------------------------


async def _run_client(args: argparse.Namespace) -> dict[str, Any]:
    """Send ``count`` Increment RPCs to ``counter/<key>``; a send that times out is retried with
    the same message id until it is answered. With ``--events``, publish ``count`` Increment
    events to topic ``increments/<key>`` instead (each confirmed by the broker)."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
    settings = BrokerSettings.from_env(rpc_timeout=args.rpc_timeout)
    runtime = BrokerAgentRuntime(settings)
    await runtime.start()
    _note(f"started as {settings.worker_id}")
    recipient = AgentId(COUNTER_TYPE, args.key)
    retries = 0
    errors: list[str] = []
    answers: list[int] = []
    next_index = 0
    started = time.monotonic()

    async def send_one(message_id: str) -> None:
        nonlocal retries
        while True:
            try:
                answers.append(
                    await runtime.send_message(Increment(1), recipient, message_id=message_id)
                )
                return
            except TimeoutError as e:
                retries += 1
                errors.append(f"{message_id}: {e}")
                if time.monotonic() - started > args.deadline:
                    raise

    async def publish_one(message_id: str) -> None:
        topic = TopicId(INCREMENTS_TOPIC, args.key)
        await runtime.publish_message(Increment(1), topic, message_id=message_id)
        answers.append(0)

    async def lane() -> None:
        nonlocal next_index
        while next_index < args.count:
            index = next_index
            next_index += 1
            if args.events:
                await publish_one(f"{args.prefix}-{index}")
            else:
                await send_one(f"{args.prefix}-{index}")

    try:
        await asyncio.gather(*(lane() for _ in range(args.concurrency)))
        _note(f"sent {len(answers)} ({retries} retries); stopping")
    finally:
        await runtime.stop()
    _note("stopped")
    return {
        "sent": len(answers),
        "retries": retries,
        "errors": errors[:20],
        "answers": answers,
        "elapsed": round(time.monotonic() - started, 3),
    }


def _note(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} client: {text}", file=sys.stderr, flush=True)


def _dump_tasks() -> None:
    """On SIGUSR1: every task's stack to stderr (what a stuck client waits for)."""
    _note("SIGUSR1: tasks")
    for task in asyncio.all_tasks():
        task.print_stack(limit=15, file=sys.stderr)
    sys.stderr.flush()


def client_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="send Increment RPCs to one counter")
    parser.add_argument("--key", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="message ids are <prefix>-<index>")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rpc-timeout", type=float, default=3.0)
    parser.add_argument("--deadline", type=float, default=90.0)
    parser.add_argument("--events", action="store_true", help="publish events, not RPCs")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = asyncio.run(_run_client(args))
    print(json.dumps(result), flush=True)

"""The agents that ``scripts/bench_broker.py`` runs in a broker worker subprocess.

The worker imports this module with ``--app bench_agents:register`` (``scripts/`` on
``PYTHONPATH``); the benchmark process imports it too, for the message classes only.

- ``echo`` (any key): ``@rpc`` ``Ping`` -> ``Pong`` (a dataclass in, a pydantic model out), and
  ``@rpc`` ``CountQuery`` -> ``CountReply``: how many ``Tick`` events this worker process handled.
- ``sink`` (keyed by the topic source): ``@event`` ``Tick`` on topic type ``ticks``, counted.

Run a worker by hand::

    PYTHONPATH=scripts AGNEXT_NAMESPACE=bench .venv/bin/python -m agnext_broker worker \\
        --app bench_agents:register
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

import agnext_broker as ab

TICKS_TOPIC = "ticks"
ECHO_TYPE = "echo"
SINK_TYPE = "sink"


@dataclass
class Ping:
    n: int


class Pong(BaseModel):
    n: int


@dataclass
class Tick:
    n: int


@dataclass
class CountQuery:
    pass


@dataclass
class CountReply:
    count: int


class _Deliveries:
    """Tick events handled in this process (all sink agents together)."""

    count = 0


class Echo(ab.RoutedAgent):
    def __init__(self) -> None:
        super().__init__("echoes pings, reports the event count")

    @ab.rpc
    async def on_ping(self, message: Ping, ctx: ab.MessageContext) -> Pong:
        return Pong(n=message.n)

    @ab.rpc
    async def on_count(self, message: CountQuery, ctx: ab.MessageContext) -> CountReply:
        return CountReply(_Deliveries.count)


class Sink(ab.RoutedAgent):
    def __init__(self) -> None:
        super().__init__("counts ticks")

    @ab.event
    async def on_tick(self, message: Tick, ctx: ab.MessageContext) -> None:
        _Deliveries.count += 1


async def register(runtime: ab.AgentRuntime) -> None:
    """Register both agent types and the ``ticks`` subscription (the worker's ``--app``)."""
    await Echo.register(runtime, ECHO_TYPE, Echo)
    await Sink.register(runtime, SINK_TYPE, Sink, skip_class_subscriptions=True)
    await runtime.add_subscription(ab.TypeSubscription(TICKS_TOPIC, SINK_TYPE))

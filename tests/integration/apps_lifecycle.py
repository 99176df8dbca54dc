"""Agents and app functions for the lifecycle and bounds tests of the broker runtime.

Module-level, like ``tests.integration.apps``, so that worker subprocesses can load them with
``--app tests.integration.apps_lifecycle:<function>``.

``Cascader`` agents handle ``Cascade`` events: each one below ``CASCADE_DEPTH`` publishes
``CASCADE_BRANCHING`` children, so one root event makes a fan-out tree of
``cascade_total()`` events in all; a ``Link`` event of a chain publishes the next link, until
the chain's length. Every handled event is recorded (in this process) in ``HANDLED[run]``, by
its path in the tree or its step in the chain, so a test can tell missing events from repeated
ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agnext_broker import (
    AgentRuntime,
    MessageContext,
    RoutedAgent,
    TopicId,
    TypeSubscription,
    event,
)
from tests.integration.apps import register_counter

CASCADE_TYPE = "cascader"
CASCADE_TOPIC = "cascade"  # events to cascader/<topic source>
CASCADE_BRANCHING = 12
CASCADE_DEPTH = 3  # the root is depth 0; depth-3 events publish nothing


def cascade_total(branching: int = CASCADE_BRANCHING, depth: int = CASCADE_DEPTH) -> int:
    """How many events one root event makes, the root included (1 + 12 + 144 + 1728)."""
    return sum(branching**level for level in range(depth + 1))


@dataclass
class Cascade:
    run: str  # one tree per run: HANDLED[run]
    depth: int
    path: str  # "root", "root.3", "root.3.11", ...


def cascade_topic(run: str, depth: int = 0, child: int = 0) -> TopicId:
    """The root goes to cascader/<run>-0-0, the i-th child of a node at depth d to
    cascader/<run>-<d + 1>-<i>: 37 agents per run, spread over the partitions. A child never
    goes to the agent that publishes it: an agent does not receive the events it publishes
    itself (as in autogen-core)."""
    return TopicId(CASCADE_TOPIC, f"{run}-{depth}-{child}")


@dataclass
class Link:
    run: str
    step: int
    length: int


CHAIN_KEYS = 7  # the agents a chain hops between: step i goes to cascader/<run>-chain-<i % 7>


def chain_topic(run: str, step: int) -> TopicId:
    return TopicId(CASCADE_TOPIC, f"{run}-chain-{step % CHAIN_KEYS}")


class Cascader(RoutedAgent):
    """Records each Cascade event it handles, then publishes its children (one at a time,
    each confirmed by the broker before the next); records each Link, then publishes the
    next one."""

    handled: ClassVar[dict[str, list[str]]] = {}

    def __init__(self) -> None:
        super().__init__("Fans events out")

    @event
    async def on_cascade(self, message: Cascade, ctx: MessageContext) -> None:
        Cascader.handled.setdefault(message.run, []).append(message.path)
        if message.depth >= CASCADE_DEPTH:
            return
        for child in range(CASCADE_BRANCHING):
            await self.publish_message(
                Cascade(message.run, message.depth + 1, f"{message.path}.{child}"),
                cascade_topic(message.run, message.depth + 1, child),
            )

    @event
    async def on_link(self, message: Link, ctx: MessageContext) -> None:
        Cascader.handled.setdefault(message.run, []).append(str(message.step))
        step = message.step + 1
        if step < message.length:
            await self.publish_message(
                Link(message.run, step, message.length), chain_topic(message.run, step)
            )


HANDLED = Cascader.handled


async def register_cascade(runtime: AgentRuntime) -> None:
    """``cascader`` agents, subscribed to topic type ``cascade`` (source = agent key)."""
    await Cascader.register(runtime, CASCADE_TYPE, Cascader)
    await runtime.add_subscription(TypeSubscription(CASCADE_TOPIC, CASCADE_TYPE))


async def register_counter_and_cascade(runtime: AgentRuntime) -> None:
    await register_counter(runtime)
    await register_cascade(runtime)

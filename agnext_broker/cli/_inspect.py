"""``agnext-broker inspect``: what a namespace holds (workers, agent types, partitions,
subscriptions, agents, one agent's state, dead letters), read from Redis and RabbitMQ. Nothing
is written; servers are named without their passwords."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from ..application.broker._operator import (
    AgentStateView,
    AgentsView,
    Connections,
    DeadLetters,
    DeadLettersView,
    Inspection,
    PartitionView,
    SubscriptionsView,
    TypeView,
    WorkerView,
)
from ._errors import run_async
from ._options import CONNECTION, load_settings, settings_options
from ._output import JSON_OPTION, NONE, optional, print_json, print_table, seconds, timestamp

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _options(command: F) -> F:
    return JSON_OPTION(settings_options(CONNECTION)(command))


def _run(
    flags: dict[str, Any],
    read: Callable[[Connections], Awaitable[T]],
    show: Callable[[T], None],
    as_json: bool,
) -> None:
    settings = load_settings(flags)

    async def main() -> int:
        async with Connections(settings) as connections:
            found = await read(connections)
        print_json(found) if as_json else show(found)
        return 0

    raise SystemExit(run_async(main()))


@click.group("inspect")
def inspect_command() -> None:
    """Show what a namespace holds in Redis and RabbitMQ (--json for JSON)."""


@inspect_command.command("workers")
@_options
def workers(as_json: bool, **flags: Any) -> None:
    """The live workers: host, pid, when they started, when their heartbeat expires (on Redis'
    clock), whether they drain, the agent types they host."""

    def show(found: list[WorkerView]) -> None:
        rows = [
            [
                w.worker_id,
                w.host,
                str(w.pid),
                timestamp(w.started),
                seconds(w.expires_in_s),
                "yes" if w.draining else "no",
                ", ".join(w.agent_types) or NONE,
            ]
            for w in found
        ]
        headers = ["WORKER", "HOST", "PID", "STARTED", "EXPIRES IN", "DRAINING", "AGENT TYPES"]
        print_table(headers, rows, numeric=["PID", "EXPIRES IN"], empty="no live workers")

    _run(flags, lambda c: Inspection(c).workers(), show, as_json)


@inspect_command.command("types")
@_options
def types(as_json: bool, **flags: Any) -> None:
    """The registered agent types: partitions, subscriptions, agents active, the live workers
    hosting them, the message types their handlers take."""

    def show(found: list[TypeView]) -> None:
        rows = [
            [
                t.agent_type,
                str(t.partitions),
                str(t.subscriptions),
                str(t.active_agents),
                ", ".join(t.hosts) or "none",
                ", ".join(t.message_types) or NONE,
            ]
            for t in found
        ]
        headers = ["TYPE", "PARTITIONS", "SUBSCRIPTIONS", "ACTIVE", "HOSTS", "MESSAGE TYPES"]
        numeric = ["PARTITIONS", "SUBSCRIPTIONS", "ACTIVE"]
        print_table(headers, rows, numeric=numeric, empty="no agent types registered")

    _run(flags, lambda c: Inspection(c).types(), show, as_json)


@inspect_command.command("partitions")
@click.argument("agent_type", metavar="[TYPE]", required=False)
@_options
def partitions(agent_type: str | None, as_json: bool, **flags: Any) -> None:
    """Each partition of TYPE (default: of every type): the worker holding it, and its queue's
    messages ready (waiting; those delivered and not yet acknowledged are not counted) and
    consumers."""

    def show(found: list[PartitionView]) -> None:
        rows = [
            [
                p.agent_type,
                str(p.partition),
                optional(p.owner) + ("" if p.owner is None or p.owner_live else " (gone)"),
                "no queue" if p.ready is None else str(p.ready),
                optional(p.consumers),
            ]
            for p in found
        ]
        headers = ["TYPE", "PARTITION", "OWNER", "READY", "CONSUMERS"]
        numeric = ["PARTITION", "READY", "CONSUMERS"]
        print_table(headers, rows, numeric=numeric, empty="no agent types registered")

    _run(flags, lambda c: Inspection(c).partitions(agent_type), show, as_json)


@inspect_command.command("subscriptions")
@_options
def subscriptions(as_json: bool, **flags: Any) -> None:
    """The subscriptions every worker shares (a topic ending in * is a prefix)."""

    def show(found: SubscriptionsView) -> None:
        rows = [[s.agent_type, s.topic, s.kind, s.id] for s in found.subscriptions]
        headers = ["AGENT TYPE", "TOPIC", "KIND", "ID"]
        print_table(headers, rows, empty="no subscriptions")

    _run(flags, lambda c: Inspection(c).subscriptions(), show, as_json)


@inspect_command.command("agents")
@click.argument("agent_type", metavar="TYPE")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@_options
def agents(agent_type: str, limit: int, as_json: bool, **flags: Any) -> None:
    """The agents of TYPE that Redis knows (a saved state, or active recently), by key: their
    partition and its holder, their state's version, when they were last active."""

    def show(found: AgentsView) -> None:
        rows = [
            [a.key, str(a.partition), optional(a.owner), optional(a.version),
             seconds(a.last_active_s) + (" ago" if a.last_active_s is not None else "")]
            for a in found.agents
        ]  # fmt: skip
        headers = ["KEY", "PARTITION", "OWNER", "VERSION", "LAST ACTIVE"]
        numeric = ["PARTITION", "VERSION", "LAST ACTIVE"]
        print_table(headers, rows, numeric=numeric, empty=f"no agents of {agent_type} in Redis")
        if len(found.agents) < found.total:
            click.echo(f"({len(found.agents)} of {found.total} shown: raise --limit)", err=True)

    _run(flags, lambda c: Inspection(c).agents(agent_type, limit), show, as_json)


@inspect_command.command("state")
@click.argument("agent_type", metavar="TYPE")
@click.argument("key", metavar="KEY")
@_options
def state(agent_type: str, key: str, as_json: bool, **flags: Any) -> None:
    """The record of the agent TYPE/KEY: its saved state and version, and the messages it
    remembers applying (and the responses it keeps for retries)."""

    def ago(value: float | None) -> str:
        return NONE if value is None else f"{seconds(value)} ago"

    def show(found: AgentStateView) -> None:
        rows = [
            ["agent", found.agent],
            ["redis key", found.state_key],
            ["partition", str(found.partition)],
            ["owner", optional(found.owner)],
            ["version", optional(found.version)],
            ["applied", str(found.applied)],
            ["responses", str(found.responses)],
            ["last applied", ago(found.last_applied_s)],
            ["last active", ago(found.last_active_s)],
        ]
        print_table(["FIELD", "VALUE"], rows)
        click.echo("state:")
        click.echo(json.dumps(found.state, indent=2) if found.state is not None else "(none saved)")

    _run(flags, lambda c: Inspection(c).state(agent_type, key), show, as_json)


@inspect_command.command("dead-letters")
@click.option("--reason", help="only those of this reason (handler_error, unknown_type, ...)")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@_options
def dead_letters(reason: str | None, limit: int, as_json: bool, **flags: Any) -> None:
    """The messages in the dead-letter queue, oldest first, with why they died and where they
    came from; they stay in the queue (agnext-broker dead-letters replay sends them back)."""

    def show(found: DeadLettersView) -> None:
        rows = [
            [optional(d.message_id), optional(d.type), optional(d.target), d.reason,
             optional(d.queue), str(d.deaths), seconds(d.age_s), d.detail.replace("\n", " ")]
            for d in found.letters
        ]  # fmt: skip
        headers = ["ID", "TYPE", "TARGET", "REASON", "FROM QUEUE", "DEATHS", "AGE", "DETAIL"]
        of = f" with reason {reason!r}" if reason else ""
        empty = f"no dead letters{of} ({found.total} in {found.queue})"
        print_table(headers, rows, numeric=["DEATHS", "AGE"], empty=empty)
        if rows:
            click.echo(f"{len(rows)} shown; {found.total} in {found.queue}", err=True)

    _run(flags, lambda c: DeadLetters(c).peek(reason, limit), show, as_json)

"""``agnext-broker dead-letters replay | purge``: after a fix, send the namespace's dead letters
back to their agents' partitions, or delete them. (``agnext-broker inspect dead-letters`` shows
them.)"""

from __future__ import annotations

from typing import Any

import click

from ..application.broker._operator import Connections, DeadLetters, ReplayResult
from ._errors import run_async
from ._options import CONNECTION, load_settings, settings_options
from ._output import JSON_OPTION, print_json

_REASON = click.option("--reason", help="only those of this reason (handler_error, ...)")


@click.group("dead-letters")
def dead_letters_command() -> None:
    """Send the dead letters back to their partitions, or delete them."""


def _summary(result: ReplayResult, queue: str) -> str:
    line = f"replayed {result.replayed} of {result.examined} dead letters examined"
    if result.unroutable:
        line += f"; {len(result.unroutable)} could not be sent back (left in the queue)"
    return line + f"; {result.left} left in {queue}"


async def _replay(
    connections: Connections, reason: str | None, limit: int | None, as_json: bool
) -> int:
    from rich.console import Console  # imported when used: it costs every command's start
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    letters = DeadLetters(connections)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[sent]} sent back"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    task = progress.add_task("replay", total=None, sent=0)

    def advance(examined: int, total: int, sent: int) -> None:
        progress.update(task, completed=examined, total=total, sent=sent)

    with progress:
        result = await letters.replay(reason, limit, advance)
    if as_json:
        print_json(result)
        return 0
    for unroutable in result.unroutable:
        click.echo(
            f"not sent back: {unroutable.message_id or '(no id)'}: {unroutable.why}", err=True
        )
    click.echo(_summary(result, letters.queue))
    return 0


@dead_letters_command.command("replay")
@_REASON
@click.option("--limit", type=click.IntRange(min=1), help="send back at most this many")
@JSON_OPTION
@settings_options(CONNECTION)
def replay(reason: str | None, limit: int | None, as_json: bool, **flags: Any) -> None:
    """Send the dead letters (of --reason, at most --limit) back to their agents' partition
    queues, with their ids: each leaves the dead-letter queue once the broker confirmed it in
    its partition, and an agent that applied it already does not apply it again."""
    settings = load_settings(flags)

    async def main() -> int:
        async with Connections(settings) as connections:
            return await _replay(connections, reason, limit, as_json)

    raise SystemExit(run_async(main()))


@dead_letters_command.command("purge")
@_REASON
@click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
@settings_options(CONNECTION)
def purge(reason: str | None, yes: bool, **flags: Any) -> None:
    """Delete the dead letters (of --reason); asks first unless --yes."""
    settings = load_settings(flags)
    queue = DeadLetters(Connections(settings)).queue

    found: list[int] = []

    async def count() -> int:
        async with Connections(settings) as connections:
            found.append(await DeadLetters(connections).count())
        return 0

    async def delete() -> int:
        async with Connections(settings) as connections:
            deleted = await DeadLetters(connections).purge(reason)
        click.echo(f"deleted {deleted} dead letters from {queue}")
        return 0

    status = run_async(count())
    if status or not found:
        raise SystemExit(status)
    total = found[0]
    if total == 0:
        click.echo(f"{queue} is empty")
        raise SystemExit(0)
    if not yes:  # asked with no connection open: the answer may take its time
        what = f"the dead letters with reason {reason!r}, of {total}," if reason else f"all {total}"
        click.confirm(f"Delete {what} dead letters in {queue}?", abort=True, err=True)
    raise SystemExit(run_async(delete()))

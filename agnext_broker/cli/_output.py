"""How the operator's commands print: a table (rich on a terminal, plain aligned columns when
piped, so that ``grep`` and ``awk`` read it), or JSON with ``--json``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")

NONE = "-"


def print_json(value: Any) -> None:
    """Dataclasses as objects, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, list | tuple):
        value = [
            dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v
            for v in value
        ]
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[str] = (),
    empty: str = "nothing to show",
) -> None:
    """The rows under their headers; the ``numeric`` columns aligned right. No rows: ``empty``."""
    if not rows:
        click.echo(empty)
        return
    from rich.console import Console  # imported when used: it costs every command's start
    from rich.table import Table

    console = Console(highlight=False)
    if console.is_terminal:
        table = Table(*headers, header_style="bold")
        for header, column in zip(headers, table.columns, strict=True):
            column.justify = "right" if header in numeric else "left"
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        aligned = [
            c.rjust(w) if h in numeric else c.ljust(w)
            for c, w, h in zip(cells, widths, headers, strict=True)
        ]
        return "  ".join(aligned).rstrip()

    click.echo(line(headers))
    for row in rows:
        click.echo(line(row))


def seconds(value: float | None) -> str:
    """A duration as people read it: ``4.2 s``, ``12.5 min``, ``3.0 h``, ``2.1 d``."""
    if value is None:
        return NONE
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    if value < 86400:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def timestamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def optional(value: object) -> str:
    return NONE if value is None else str(value)

"""How the commands fail: one line on stderr saying what is wrong and what to do, exit 1."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import click

from ..base import AgnextError, UndeliverableException


class CommandError(click.ClickException):
    """A command could not do its work; the message says why (click prints ``Error: ...``)."""

    exit_code = 1


def run_async(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine; the framework's errors become one line and exit 1."""
    try:
        return asyncio.run(coroutine)
    except (AgnextError, UndeliverableException) as e:
        raise CommandError(str(e)) from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130

"""Waiting, in the code executor tests, for processes and files without fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path


def process_is_alive(pid: int) -> bool:
    """Whether ``pid`` runs here: a zombie (killed, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


async def poll_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}")
        await asyncio.sleep(0.02)


async def wait_for_file(path: Path, *, timeout: float = 30.0) -> str:
    """The contents of ``path`` once it exists and is not empty."""
    await poll_until(lambda: read_text(path) != "", timeout=timeout, what=f"{path} is written")
    return read_text(path)


def read_text(path: Path) -> str:
    """The stripped contents of ``path``; empty if it does not exist (yet)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def exists(path: Path) -> bool:
    return path.exists()


def entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())

"""Run one command with its output captured, a timeout and a cancellation token."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ...base import CancellationToken
from ._command_line import CANCELLED_EXIT_CODE, TIMEOUT_EXIT_CODE

# After the process ended and what it left was killed, how long its output may take to drain.
# Only a process that escaped the kill still holds the pipe then; its output is not waited for.
OUTPUT_DRAIN_SECONDS = 2.0

Finish = Callable[[asyncio.subprocess.Process], Awaitable[None]]


@dataclass
class ProcessOutcome:
    exit_code: int
    output: str
    timed_out: bool = False
    cancelled: bool = False


async def kill_process_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group ``process`` leads (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None,
    timeout_seconds: float,
    cancellation_token: CancellationToken,
    finish: Finish = kill_process_group,
) -> ProcessOutcome:
    """Run ``argv`` until it exits, ``timeout_seconds`` pass or the token is cancelled.

    Standard output and error share one pipe, so the output keeps the order it was written in.
    ``finish`` runs whenever the command ends, however it ends: it kills what the command left
    running (by default its process group).
    """
    if cancellation_token.is_cancelled():
        return ProcessOutcome(CANCELLED_EXIT_CODE, "\nCancelled", cancelled=True)
    loop = asyncio.get_running_loop()
    cancel_requested: asyncio.Future[Any] = loop.create_future()

    def request_cancel() -> None:
        def resolve() -> None:
            if not cancel_requested.done():
                cancel_requested.set_result(None)

        loop.call_soon_threadsafe(resolve)

    cancellation_token.add_callback(request_cancel)
    # A pipe of our own rather than asyncio's: asyncio's wait() returns only once the output
    # pipe is closed, which a leftover background process would hold open.
    read_fd, write_fd = os.pipe()
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        chunks: list[bytes] = []
        reader = asyncio.ensure_future(_read_all(os.fdopen(read_fd, "rb", buffering=0), chunks))
        read_fd = -1  # the reader owns it now
        exited: asyncio.Future[Any] = asyncio.ensure_future(process.wait())
        try:
            done, _ = await asyncio.wait(
                {exited, cancel_requested},
                timeout=timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            await asyncio.shield(_end(process, finish, exited, reader))
            raise
        await _end(process, finish, exited, reader)
    finally:
        if read_fd >= 0:
            os.close(read_fd)
        cancellation_token.remove_callback(request_cancel)
    output = b"".join(chunks).decode("utf-8", errors="replace")
    if exited not in done:
        if cancel_requested in done:
            return ProcessOutcome(CANCELLED_EXIT_CODE, output + "\nCancelled", cancelled=True)
        return ProcessOutcome(TIMEOUT_EXIT_CODE, output + "\nTimeout", timed_out=True)
    return ProcessOutcome(int(exited.result()), output)


async def _end(
    process: asyncio.subprocess.Process,
    finish: Finish,
    exited: asyncio.Future[Any],
    reader: asyncio.Future[None],
) -> None:
    await finish(process)
    if not exited.done():
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await exited
    try:
        await asyncio.wait_for(asyncio.shield(reader), OUTPUT_DRAIN_SECONDS)
    except TimeoutError:
        reader.cancel()


async def _read_all(pipe: BinaryIO, chunks: list[bytes]) -> None:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), pipe)
    try:
        while chunk := await stream.read(65536):
            chunks.append(chunk)
    finally:
        transport.close()

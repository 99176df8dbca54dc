"""Running ``agnext-broker`` commands as subprocesses, as a user would, with a bound."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from tests.integration.workers import REPO_ROOT

# A command that talks to the servers connects within its connect timeout; beyond this bound it
# is stuck, which the test reports instead of waiting.
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command: this one without AGNEXT_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGNEXT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


async def agnext(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = COMMAND_TIMEOUT
) -> Result:
    """Run ``agnext-broker ARGS`` (``python -m agnext_broker``) and wait for it to exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agnext_broker",
        *args,
        cwd=REPO_ROOT,
        env=command_env(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        raise AssertionError(
            f"agnext-broker {' '.join(args)} did not exit within {timeout:g} s\n"
            f"{stdout.decode(errors='replace')}\n{stderr.decode(errors='replace')}"
        ) from None
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(errors="replace"), stderr.decode("utf-8"))


def assert_one_line_error(result: Result, *expected: str) -> None:
    """A failed command said what is wrong on one ``Error:`` line, with no traceback."""
    assert result.code != 0, str(result)
    assert "Traceback" not in result.stderr, str(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, str(result)
    for text in expected:
        assert text in errors[0], f"{text!r} not in {errors[0]!r}"

"""The few Docker commands the Docker executor needs, through the ``docker`` command line."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

# Kills every process of the container but its init (PID 1), the process that keeps the
# container alive ($1) and this shell. Only builtins: a forked helper would be killed too.
KILL_ALL_BUT_KEEPER = """
for round in 1 2 3; do
  found=""
  for entry in /proc/[0-9]*; do
    pid=${entry#/proc/}
    case " 1 $1 $$ " in *" $pid "*) continue ;; esac
    found=1
    kill -9 "$pid" 2>/dev/null
  done
  [ -z "$found" ] && break
done
exit 0
"""

# The container's long-running process: it records its pid for KILL_ALL_BUT_KEEPER, then waits.
KEEPER_PID_FILE = "/tmp/.agnext-keeper.pid"
KEEPER_COMMAND = f"echo $$ > {KEEPER_PID_FILE} && exec sleep infinity"


class DockerError(RuntimeError):
    """The ``docker`` command failed; the message has its standard error."""


def docker_program() -> str:
    program = shutil.which("docker")
    if program is None:
        raise DockerError(
            "The docker command is not installed (on Debian: apt-get install docker.io)."
        )
    return program


async def docker(*args: str, check: bool = True) -> tuple[int, str]:
    """Run ``docker args...``; its exit code and output (standard error included)."""
    process = await asyncio.create_subprocess_exec(
        docker_program(),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode("utf-8", errors="replace").strip()
    code = process.returncode if process.returncode is not None else -1
    if check and code != 0:
        raise DockerError(f"docker {args[0]} failed (exit {code}): {text}")
    return code, text


def remove_container_now(name: str) -> None:
    """At interpreter exit, where no event loop runs any more."""
    program = shutil.which("docker")
    if program is not None:
        subprocess.run(
            [program, "rm", "--force", name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

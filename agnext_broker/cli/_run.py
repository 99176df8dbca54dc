"""``agnext-broker run --workers N``: N worker processes of one app on this machine.

Each worker is ``agnext-broker worker`` in a process of its own, with the same settings, a
worker id ``<id>-<i>`` and, if a health port is set, the ports ``port + i``. SIGINT (Ctrl-C)
and SIGTERM to this process are passed on to every worker: each drains; a second signal ends
them at once. The workers run in sessions of their own, so that Ctrl-C reaches them once,
through this process. The exit code is the first non-zero one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from typing import Any

from ._options import flag


def worker_command(
    app_spec: str, settings: dict[str, Any], log_level: str, log_format: str
) -> list[str]:
    command = [sys.executable, "-m", "agnext_broker", "worker", "--app", app_spec]
    command += ["--log-level", log_level, "--log-format", log_format]
    for name, value in settings.items():
        if isinstance(value, bool):
            command.append(flag(name) if value else f"--no-{flag(name)[2:]}")
        else:
            command += [flag(name), str(value)]
    return command


def run_workers(
    app_spec: str, workers: int, settings: dict[str, Any], log_level: str, log_format: str
) -> int:
    base_id = settings.pop("worker_id", None) or f"worker-{uuid.uuid4().hex[:6]}"
    health_port = int(settings.pop("health_port", 0) or 0)
    processes: list[subprocess.Popen[bytes]] = []
    for index in range(workers):
        own = {**settings, "worker_id": f"{base_id}-{index}"}
        if health_port:
            own["health_port"] = health_port + index
        command = worker_command(app_spec, own, log_level, log_format)
        processes.append(subprocess.Popen(command, start_new_session=True))
    print(
        f"agnext-broker run: {workers} worker(s) of {app_spec} "
        f"(pids {', '.join(str(p.pid) for p in processes)}); Ctrl-C drains them",
        file=sys.stderr,
        flush=True,
    )

    def pass_on(signum: int, _: Any) -> None:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    codes = [process.wait() for process in processes]
    failed = [code for code in codes if code != 0]
    return failed[0] if failed else 0

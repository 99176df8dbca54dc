"""LocalCommandLineCodeExecutor: code blocks run as processes of this machine, in a work directory.

It isolates nothing: the code runs as this process's user, with its environment, and can read
and write anything that user can, absolute paths included. What it bounds is the process: each
block runs in a session and process group of its own, and when the block ends (it exits, times
out or is cancelled) the whole group is killed, so ``sleep 600 &`` does not outlive its block. A
process that leaves the group on purpose (``setsid``, a daemon) is not found. Use the Docker
executor for code you do not trust.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self

from pydantic import BaseModel

from ...base import CancellationToken
from .._component_config import Component
from ._base import CodeBlock
from ._command_line import CommandLineCodeResult, SavedBlock, lang_to_cmd
from ._command_line_executor import CommandLineExecutorBase
from ._func_with_reqs import AnyFunction, to_stub
from ._processes import ProcessOutcome, run_process

logger = logging.getLogger("agnext_broker.code_executor")


class LocalCommandLineCodeExecutorConfig(BaseModel):
    timeout: int = 60
    work_dir: str | None = None
    functions_module: str = "functions"
    cleanup_temp_files: bool = True


class LocalCommandLineCodeExecutor(
    CommandLineExecutorBase, Component[LocalCommandLineCodeExecutorConfig]
):
    """Runs each code block as a process on this machine, in the work directory.

    .. danger::

        The code runs on this machine as this user. Give it model-written code only if you
        accept that; :class:`DockerCommandLineCodeExecutor` confines it to a container.

    Each block is saved to a file in the work directory (``tmp_code_<sha256>.<ext>``, or the
    name a first line ``# filename: <name>`` gives, which must stay inside the work directory)
    and run with this Python (``python`` blocks) or the shell (``sh``, ``bash``, ``shell``).
    Blocks run in order; the first that fails ends the run. Standard output and standard error
    are captured together, in the order they were written.

    Args:
        timeout: seconds each block may run; then its process group is killed and the result
            has exit code 124 and ends with ``Timeout``.
        work_dir: where the files are written and the code runs; by default a temporary
            directory made by :meth:`start` and removed by :meth:`stop`.
        functions: functions made importable from the module ``functions_module`` in the work
            directory; their :func:`with_requirements` packages are installed with pip first.
        functions_module: the name of that module.
        virtual_env_context: a ``venv.EnvBuilder().ensure_directories(...)`` context, to run
            Python (and pip) from that environment.
        cleanup_temp_files: remove the code files after each run.
    """

    component_config_schema = LocalCommandLineCodeExecutorConfig
    component_provider_override = "agnext_broker.code_executor.LocalCommandLineCodeExecutor"

    def __init__(
        self,
        timeout: int = 60,
        work_dir: Path | str | None = None,
        functions: Sequence[AnyFunction] = (),
        functions_module: str = "functions",
        virtual_env_context: SimpleNamespace | None = None,
        cleanup_temp_files: bool = True,
    ) -> None:
        super().__init__(
            timeout=timeout,
            work_dir=work_dir,
            functions=functions,
            functions_module=functions_module,
        )
        self._virtual_env_context = virtual_env_context
        self._cleanup_temp_files = cleanup_temp_files
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None
        self._setup_lock = asyncio.Lock()

    @property
    def work_dir(self) -> Path:
        """The work directory (the temporary one exists between :meth:`start` and :meth:`stop`)."""
        if self._user_work_dir is not None:
            return self._user_work_dir
        if self._temp_dir is None:
            raise RuntimeError("The executor has no work directory yet: call start() first.")
        return Path(self._temp_dir.name)

    @property
    def functions(self) -> list[str]:
        """The names of the functions made importable."""
        return [to_stub(f).split("(", 1)[0].removeprefix("def ") for f in self._functions]

    async def start(self) -> None:
        if self._user_work_dir is None and self._temp_dir is None:
            self._temp_dir = tempfile.TemporaryDirectory(prefix="agnext-code-")
            self._functions_ready = not self._functions

    async def stop(self) -> None:
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    async def restart(self) -> None:
        warnings.warn(
            "Restarting local command line code executor is not supported. No action is taken.",
            stacklevel=2,
        )

    async def execute_code_blocks(
        self, code_blocks: list[CodeBlock], cancellation_token: CancellationToken
    ) -> CommandLineCodeResult:
        """Run ``code_blocks`` in order (see the class); :meth:`start` is called if it was not."""
        await self.start()
        async with self._setup_lock:
            if not self._functions_ready:
                await self._setup_functions(cancellation_token)
        return await self._run_blocks(
            code_blocks, cancellation_token, cleanup=self._cleanup_temp_files
        )

    def _python(self) -> str:
        if self._virtual_env_context is not None:
            return os.path.abspath(str(self._virtual_env_context.env_exe))
        return sys.executable

    def _environment(self) -> dict[str, str]:
        env = os.environ.copy()
        env.setdefault("PYTHONUNBUFFERED", "1")  # output and errors in the order written
        if self._virtual_env_context is not None:
            bin_path = os.path.abspath(str(self._virtual_env_context.bin_path))
            env["PATH"] = f"{bin_path}{os.pathsep}{env.get('PATH', '')}"
        return env

    async def _install_packages(
        self, packages: list[str], cancellation_token: CancellationToken
    ) -> None:
        argv = [self._python(), "-m", "pip", "install", "--quiet", *packages]
        outcome = await self._run(argv, cancellation_token)
        if outcome.timed_out:
            raise ValueError("Pip install timed out")
        if outcome.cancelled:
            raise ValueError("Pip install was cancelled")
        if outcome.exit_code != 0:
            raise ValueError(f"Pip install failed. {outcome.output}")

    async def _run(self, argv: list[str], cancellation_token: CancellationToken) -> ProcessOutcome:
        return await run_process(
            argv,
            cwd=self.work_dir,
            env=self._environment(),
            timeout_seconds=self._timeout,
            cancellation_token=cancellation_token,
        )

    async def _run_saved_block(
        self, block: SavedBlock, cancellation_token: CancellationToken
    ) -> ProcessOutcome:
        return await self._run(self._command(block), cancellation_token)

    def _command(self, block: SavedBlock) -> list[str]:
        if block.language == "python":
            return [self._python(), str(block.path)]
        program = lang_to_cmd(block.language)
        if program in ("pwsh", "powershell"):
            return [program, "-NoProfile", "-ExecutionPolicy", "Bypass", "-File", str(block.path)]
        return [program, str(block.path)]

    def _to_config(self) -> LocalCommandLineCodeExecutorConfig:
        if self._functions:
            logger.info("Functions will not be included in serialized configuration")
        return LocalCommandLineCodeExecutorConfig(
            timeout=self._timeout,
            work_dir=str(self._user_work_dir) if self._user_work_dir is not None else None,
            functions_module=self._functions_module,
            cleanup_temp_files=self._cleanup_temp_files,
        )

    @classmethod
    def _from_config(cls, config: LocalCommandLineCodeExecutorConfig) -> Self:
        return cls(
            timeout=config.timeout,
            work_dir=config.work_dir,
            functions_module=config.functions_module,
            cleanup_temp_files=config.cleanup_temp_files,
        )

    def __repr__(self) -> str:
        where: Any = self._user_work_dir or (self._temp_dir.name if self._temp_dir else None)
        return f"LocalCommandLineCodeExecutor(work_dir={where!s}, timeout={self._timeout})"

"""DockerCommandLineCodeExecutor: code blocks run inside a container that sees only the work dir.

The container shares one directory with this machine, the work directory, mounted read-write
at ``/workspace``; everything else the code writes (``/tmp``, ``/etc``, absolute paths of this
machine) stays in the container's own file system and is gone when the container is removed.
The code runs as the image's user (root inside the container), in the container's own process
namespace, with Docker's default network (it can reach what the container can reach) and no
resource limits beyond Docker's defaults. When a block ends (it exits, times out or is
cancelled) every process it left in the container is killed.

It drives the ``docker`` command line rather than the Docker SDK for Python: no dependency,
and nothing the executor does needs more than ``run``, ``exec`` and ``rm``.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel

from ...base import CancellationToken
from .._component_config import Component
from ._base import CodeBlock
from ._command_line import CommandLineCodeResult, SavedBlock, lang_to_cmd
from ._command_line_executor import CommandLineExecutorBase
from ._docker_cli import (
    KEEPER_COMMAND,
    KEEPER_PID_FILE,
    KILL_ALL_BUT_KEEPER,
    DockerError,
    docker,
    docker_program,
    remove_container_now,
)
from ._func_with_reqs import AnyFunction
from ._processes import ProcessOutcome, run_process

logger = logging.getLogger("agnext_broker.code_executor")

CONTAINER_WORK_DIR = "/workspace"
_KEEPER_WAIT_SECONDS = 30.0


class DockerCommandLineCodeExecutorConfig(BaseModel):
    image: str = "python:3-slim"
    container_name: str | None = None
    timeout: int = 60
    work_dir: str | None = None
    bind_dir: str | None = None
    auto_remove: bool = True
    stop_container: bool = True
    functions_module: str = "functions"
    extra_volumes: dict[str, dict[str, str]] = {}
    extra_hosts: dict[str, str] = {}
    init_command: str | None = None
    delete_tmp_files: bool = False


class DockerCommandLineCodeExecutor(
    CommandLineExecutorBase, Component[DockerCommandLineCodeExecutorConfig]
):
    """Runs each code block in a Docker container, with the work directory bind-mounted.

    Each block is saved to a file in the work directory (``# filename: <name>`` on its first
    line picks the name, inside the work directory) and run with ``python3`` or the shell in
    the container, in ``/workspace``. The image needs ``sh`` and ``python3``; it is pulled if
    Docker does not have it. Standard output and error are captured together, in order.

    Args:
        image: the image to run.
        container_name: the container's name (default ``agnext-code-exec-<uuid>``).
        timeout: seconds each block may run; then everything it started in the container is
            killed and the result has exit code 124 and ends with ``Timeout``.
        work_dir: where the files are written on this machine; by default a temporary
            directory made by :meth:`start` and removed by :meth:`stop`.
        bind_dir: the path of the work directory as the Docker daemon sees it (when this
            process itself runs in a container); default ``work_dir``.
        auto_remove: remove the container once it is stopped.
        stop_container: also stop the container when the interpreter exits, if :meth:`stop`
            was not called.
        device_requests: not supported (it takes Docker SDK objects); pass ``None``.
        functions: functions made importable from ``functions_module`` in the work directory.
        functions_module: the name of that module.
        extra_volumes: more bind mounts, ``{host_path: {"bind": path, "mode": "rw"|"ro"}}``.
        extra_hosts: ``{hostname: ip}`` entries for the container's ``/etc/hosts``.
        init_command: a shell command run before each block (in the same shell).
        delete_tmp_files: remove the code files after each run.
    """

    component_config_schema = DockerCommandLineCodeExecutorConfig
    component_provider_override = "agnext_broker.code_executor.DockerCommandLineCodeExecutor"

    def __init__(
        self,
        image: str = "python:3-slim",
        container_name: str | None = None,
        *,
        timeout: int = 60,
        work_dir: Path | str | None = None,
        bind_dir: Path | str | None = None,
        auto_remove: bool = True,
        stop_container: bool = True,
        device_requests: Sequence[Any] | None = None,
        functions: Sequence[AnyFunction] = (),
        functions_module: str = "functions",
        extra_volumes: Mapping[str, Mapping[str, str]] | None = None,
        extra_hosts: Mapping[str, str] | None = None,
        init_command: str | None = None,
        delete_tmp_files: bool = False,
    ) -> None:
        if device_requests is not None:
            raise NotImplementedError(
                "device_requests takes Docker SDK objects, which this executor does not use."
            )
        super().__init__(
            timeout=timeout,
            work_dir=work_dir,
            functions=functions,
            functions_module=functions_module,
        )
        self._image = image
        self.container_name = container_name or f"agnext-code-exec-{uuid.uuid4()}"
        self._user_bind_dir = Path(bind_dir) if bind_dir is not None else None
        self._auto_remove = auto_remove
        self._stop_container = stop_container
        self._extra_volumes = {k: dict(v) for k, v in (extra_volumes or {}).items()}
        self._extra_hosts = dict(extra_hosts or {})
        self._init_command = init_command
        self._delete_tmp_files = delete_tmp_files
        self._temp_dir: str | None = None
        self._keeper_pid: str | None = None
        self._remove_at_exit = functools.partial(remove_container_now, self.container_name)
        self._lock = asyncio.Lock()  # one block at a time: its end kills all but the keeper

    @property
    def work_dir(self) -> Path:
        if self._user_work_dir is not None:
            return self._user_work_dir
        if self._temp_dir is None:
            raise RuntimeError("The executor has no work directory yet: call start() first.")
        return Path(self._temp_dir)

    @property
    def bind_dir(self) -> Path:
        return self._user_bind_dir if self._user_bind_dir is not None else self.work_dir

    async def start(self) -> None:
        """Create and start the container (pulling the image if Docker does not have it)."""
        if self._keeper_pid is not None:
            return
        docker_program()
        if self._user_work_dir is None and self._temp_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="agnext-code-")
        code, _ = await docker("image", "inspect", self._image, check=False)
        if code != 0:
            logger.info("pulling image %s", self._image)
            await docker("pull", self._image)
        await docker(*self._run_arguments())
        if self._stop_container:
            atexit.register(self._remove_at_exit)
        try:
            self._keeper_pid = await self._read_keeper_pid()
        except BaseException:
            await self._remove_container()
            raise
        self._functions_ready = not self._functions

    def _run_arguments(self) -> list[str]:
        arguments = ["run", "--detach", "--init", "--name", self.container_name]
        if self._auto_remove:
            arguments.append("--rm")
        mounts = {str(self.bind_dir.resolve()): {"bind": CONTAINER_WORK_DIR, "mode": "rw"}}
        for host_path, mount in {**mounts, **self._extra_volumes}.items():
            arguments += ["--volume", f"{host_path}:{mount['bind']}:{mount.get('mode', 'rw')}"]
        for host, address in self._extra_hosts.items():
            arguments += ["--add-host", f"{host}:{address}"]
        arguments += ["--workdir", CONTAINER_WORK_DIR, "--entrypoint", "/bin/sh", self._image]
        return [*arguments, "-c", KEEPER_COMMAND]

    async def _read_keeper_pid(self) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _KEEPER_WAIT_SECONDS
        while True:
            code, text = await docker(
                "exec", self.container_name, "cat", KEEPER_PID_FILE, check=False
            )
            if code == 0 and text.isdigit():
                return text
            if loop.time() > deadline:
                _, logs = await docker("logs", self.container_name, check=False)
                raise DockerError(f"The container of {self._image} did not start: {logs}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the container (and remove it, with ``auto_remove``) and the temporary work dir."""
        if self._keeper_pid is not None:
            self._keeper_pid = None
            await self._remove_container()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    async def _remove_container(self) -> None:
        if self._auto_remove:
            await docker("rm", "--force", self.container_name, check=False)
        else:
            await docker("stop", "--time", "1", self.container_name, check=False)
        atexit.unregister(self._remove_at_exit)

    async def restart(self) -> None:
        """Restart the container: every process in it ends; files in the work dir stay."""
        if self._keeper_pid is None:
            raise ValueError(
                "Container is not running. Must first be started with either start or a "
                "context manager."
            )
        async with self._lock:
            # The restarted keeper writes its pid again: never read the old one.
            await docker("exec", self.container_name, "rm", "-f", KEEPER_PID_FILE)
            await docker("restart", "--time", "1", self.container_name)
            self._keeper_pid = await self._read_keeper_pid()

    async def execute_code_blocks(
        self, code_blocks: list[CodeBlock], cancellation_token: CancellationToken
    ) -> CommandLineCodeResult:
        """Run ``code_blocks`` in order in the container; :meth:`start` must have been called."""
        if self._keeper_pid is None:
            raise ValueError(
                "Container is not running. Must first be started with either start or a "
                "context manager."
            )
        if not code_blocks:
            raise ValueError("No code blocks to execute.")
        async with self._lock:
            if not self._functions_ready:
                await self._setup_functions(cancellation_token)
            return await self._run_blocks(
                code_blocks, cancellation_token, cleanup=self._delete_tmp_files
            )

    async def _install_packages(
        self, packages: list[str], cancellation_token: CancellationToken
    ) -> None:
        install = f"python3 -m pip install --quiet {shlex.join(packages)}"
        result = await self._run_blocks(
            [CodeBlock(code=install, language="sh")], cancellation_token, cleanup=True
        )
        if result.exit_code != 0:
            raise ValueError(f"Pip install failed. {result.output}")

    async def _run_saved_block(
        self, block: SavedBlock, cancellation_token: CancellationToken
    ) -> ProcessOutcome:
        return await run_process(
            self._exec_arguments(block),
            cwd=self.work_dir,
            env=None,
            timeout_seconds=self._timeout,
            cancellation_token=cancellation_token,
            finish=self._kill_leftovers,
        )

    def _exec_arguments(self, block: SavedBlock) -> list[str]:
        relative = block.path.relative_to(self.work_dir.resolve()).as_posix()
        program = "python3" if block.language == "python" else lang_to_cmd(block.language)
        init = f"{self._init_command} && " if self._init_command else ""
        # Errors join the output inside the container: docker exec carries the two streams
        # apart, and the order they were written in would be lost on the way.
        command = ["sh", "-c", f'{init}exec "$@" 2>&1', "sh", program, relative]
        # Unbuffered, so that output and errors keep the order they were written in.
        program_and_container = [docker_program(), "exec", "--env", "PYTHONUNBUFFERED=1"]
        program_and_container += ["--workdir", CONTAINER_WORK_DIR]
        return [*program_and_container, self.container_name, *command]

    async def _kill_leftovers(self, _process: asyncio.subprocess.Process) -> None:
        keeper = self._keeper_pid
        if keeper is not None:
            await docker(
                "exec",
                self.container_name,
                "sh",
                "-c",
                KILL_ALL_BUT_KEEPER,
                "sh",
                keeper,
                check=False,
            )

    def _to_config(self) -> DockerCommandLineCodeExecutorConfig:
        if self._functions:
            logger.info("Functions will not be included in serialized configuration")
        return DockerCommandLineCodeExecutorConfig(
            image=self._image,
            container_name=self.container_name,
            timeout=self._timeout,
            work_dir=str(self._user_work_dir) if self._user_work_dir is not None else None,
            bind_dir=str(self._user_bind_dir) if self._user_bind_dir is not None else None,
            auto_remove=self._auto_remove,
            stop_container=self._stop_container,
            functions_module=self._functions_module,
            extra_volumes=self._extra_volumes,
            extra_hosts=self._extra_hosts,
            init_command=self._init_command,
            delete_tmp_files=self._delete_tmp_files,
        )

    @classmethod
    def _from_config(cls, config: DockerCommandLineCodeExecutorConfig) -> Self:
        return cls(
            image=config.image,
            container_name=config.container_name,
            timeout=config.timeout,
            work_dir=config.work_dir,
            bind_dir=config.bind_dir,
            auto_remove=config.auto_remove,
            stop_container=config.stop_container,
            functions_module=config.functions_module,
            extra_volumes=config.extra_volumes,
            extra_hosts=config.extra_hosts,
            init_command=config.init_command,
            delete_tmp_files=config.delete_tmp_files,
        )

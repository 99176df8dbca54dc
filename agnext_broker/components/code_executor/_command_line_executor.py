"""CommandLineExecutorBase: what the local and the Docker executor do alike.

Both take a timeout, a work directory and functions made importable from a module there; both
save each code block to a file in the work directory and run the files in order, stopping at
the first that cannot run, fails, times out or is cancelled. How a file is run (a process of
this machine, ``docker exec``) and how the functions' packages are installed is each one's own.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from string import Template
from typing import ClassVar

from ...base import CancellationToken
from ._base import CodeBlock, CodeExecutor
from ._command_line import (
    FUNCTION_PROMPT_TEMPLATE,
    SUPPORTED_LANGUAGES,
    CommandLineCodeResult,
    SavedBlock,
    save_block,
)
from ._func_with_reqs import AnyFunction, build_python_functions_file, required_packages, to_stub
from ._processes import ProcessOutcome

logger = logging.getLogger("agnext_broker.code_executor")


class CommandLineExecutorBase(CodeExecutor):
    """A code executor that runs each block as a command on a file in its work directory."""

    SUPPORTED_LANGUAGES: ClassVar[list[str]] = SUPPORTED_LANGUAGES
    FUNCTION_PROMPT_TEMPLATE: ClassVar[str] = FUNCTION_PROMPT_TEMPLATE

    def __init__(
        self,
        *,
        timeout: int,
        work_dir: Path | str | None,
        functions: Sequence[AnyFunction],
        functions_module: str,
    ) -> None:
        if timeout < 1:
            raise ValueError("Timeout must be greater than or equal to 1.")
        if not functions_module.isidentifier():
            raise ValueError("Module name must be a valid Python identifier")
        self._timeout = timeout
        self._user_work_dir = Path(work_dir) if work_dir is not None else None
        if self._user_work_dir is not None:
            self._user_work_dir.mkdir(parents=True, exist_ok=True)
        self._functions = list(functions)
        self._functions_module = functions_module
        self._functions_ready = not self._functions

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    @abstractmethod
    def work_dir(self) -> Path:
        """Where the code files are written."""

    @property
    def functions_module(self) -> str:
        return self._functions_module

    def format_functions_for_prompt(self, prompt_template: str = FUNCTION_PROMPT_TEMPLATE) -> str:
        """Describe the functions to a model: ``$module_name`` and ``$functions`` (their stubs)
        are filled in ``prompt_template``."""
        return Template(prompt_template).substitute(
            module_name=self._functions_module,
            functions="\n\n".join(to_stub(f) for f in self._functions),
        )

    @abstractmethod
    async def _install_packages(
        self, packages: list[str], cancellation_token: CancellationToken
    ) -> None:
        """Install the functions' pip ``packages``; raises ValueError when that fails."""

    @abstractmethod
    async def _run_saved_block(
        self, block: SavedBlock, cancellation_token: CancellationToken
    ) -> ProcessOutcome:
        """Run the file of one saved code block."""

    async def _setup_functions(self, cancellation_token: CancellationToken) -> None:
        source = build_python_functions_file(self._functions)
        (self.work_dir / f"{self._functions_module}.py").write_text(source, encoding="utf-8")
        packages = required_packages(self._functions)
        if packages:
            logger.info("installing the functions' packages: %s", ", ".join(packages))
            await self._install_packages(packages, cancellation_token)
        loaded = await self._run_blocks(
            [CodeBlock(code=source, language="python")], cancellation_token, cleanup=True
        )
        if loaded.exit_code != 0:
            raise ValueError(f"Functions failed to load: {loaded.output}")
        self._functions_ready = True

    async def _run_blocks(
        self, code_blocks: list[CodeBlock], cancellation_token: CancellationToken, *, cleanup: bool
    ) -> CommandLineCodeResult:
        """Save and run ``code_blocks`` in order; with ``cleanup``, remove their files after."""
        output = ""
        exit_code = 0
        saved: list[SavedBlock] = []
        try:
            for block in code_blocks:
                block_file = save_block(block, self.work_dir)
                if isinstance(block_file, str):
                    exit_code = 1
                    output += "\n" + block_file
                    break
                saved.append(block_file)
                outcome = await self._run_saved_block(block_file, cancellation_token)
                output += outcome.output
                exit_code = outcome.exit_code
                if outcome.timed_out or outcome.cancelled or exit_code != 0:
                    break
        finally:
            if cleanup:
                for block_file in saved:
                    block_file.path.unlink(missing_ok=True)
        code_file = str(saved[0].path) if saved else None
        return CommandLineCodeResult(exit_code=exit_code, output=output, code_file=code_file)

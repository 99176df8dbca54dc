"""Code executors (autogen-core's ``autogen_core.code_executor``, with autogen-ext's command line
executors ``LocalCommandLineCodeExecutor`` and ``DockerCommandLineCodeExecutor``)."""

from ..components.code_executor._base import CodeBlock, CodeExecutor, CodeResult
from ..components.code_executor._command_line import CommandLineCodeResult
from ..components.code_executor._docker import DockerCommandLineCodeExecutor
from ..components.code_executor._func_with_reqs import (
    Alias,
    FunctionWithRequirements,
    FunctionWithRequirementsStr,
    Import,
    ImportFromModule,
    with_requirements,
)
from ..components.code_executor._local import LocalCommandLineCodeExecutor

__all__ = [
    "Alias",
    "CodeBlock",
    "CodeExecutor",
    "CodeResult",
    "CommandLineCodeResult",
    "DockerCommandLineCodeExecutor",
    "FunctionWithRequirements",
    "FunctionWithRequirementsStr",
    "Import",
    "ImportFromModule",
    "LocalCommandLineCodeExecutor",
    "with_requirements",
]

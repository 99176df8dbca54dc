"""What the command line executors share: languages, code files in the work directory, results."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from ._base import CodeBlock, CodeResult

PYTHON_VARIANTS = ("python", "Python", "py")
SHELL_LANGUAGES = ("bash", "shell", "sh")
POWERSHELL_LANGUAGES = ("pwsh", "powershell", "ps1")
SUPPORTED_LANGUAGES = [*SHELL_LANGUAGES, *POWERSHELL_LANGUAGES, "python"]

TIMEOUT_EXIT_CODE = 124  # what coreutils' timeout exits with, as autogen-ext reports it
CANCELLED_EXIT_CODE = 125

FUNCTION_PROMPT_TEMPLATE = """You have access to the following user defined functions. \
They can be accessed from the module called `$module_name` by their function names.

For example, if there was a function called `foo` you could import it by writing \
`from $module_name import foo`

$functions"""

_FILENAME_MARKER = "# filename:"


@dataclass
class CommandLineCodeResult(CodeResult):
    """A command line executor's result: also the file the first block was saved to."""

    code_file: str | None


class OutsideWorkDirError(ValueError):
    """A code block names a file outside the executor's work directory."""


def normalize_language(language: str) -> str:
    lowered = language.lower()
    return "python" if language in PYTHON_VARIANTS or lowered == "python" else lowered


def lang_to_cmd(language: str) -> str:
    """The program that runs a file of ``language``."""
    if language in PYTHON_VARIANTS:
        return "python"
    if language.startswith("python") or language in ("bash", "sh"):
        return language
    if language == "shell":
        return "sh"
    if language in POWERSHELL_LANGUAGES:
        for program in ("pwsh", "powershell"):
            if shutil.which(program) is not None:
                return program
        raise ValueError("Powershell or pwsh is not installed. Please install one of them.")
    raise ValueError(f"Unsupported language: {language}")


def file_name_from_content(code: str, work_dir: Path) -> str | None:
    """The file a ``# filename: <name>`` first line asks for, relative to ``work_dir``.

    Raises:
        OutsideWorkDirError: the name resolves (``..``, an absolute path, a symbolic link)
            outside ``work_dir``.
    """
    first_line = code.split("\n", 1)[0]
    if not first_line.startswith(_FILENAME_MARKER):
        return None
    name = first_line[len(_FILENAME_MARKER) :].strip()
    root = work_dir.resolve()
    path = (root / name).resolve()  # an absolute name replaces root here
    if not path.is_relative_to(root) or path == root:
        raise OutsideWorkDirError(f"Filename {name!r} is not in the workspace")
    return str(path.relative_to(root))


def default_file_name(code: str, language: str) -> str:
    if language.startswith("python"):
        extension = "py"
    elif language in POWERSHELL_LANGUAGES:
        extension = "ps1"
    else:
        extension = language
    return f"tmp_code_{sha256(code.encode()).hexdigest()}.{extension}"


def silence_pip(code: str, language: str) -> str:
    """Add ``-qqq`` to ``pip install`` lines, so that pip's progress does not fill the output."""
    if language == "python":
        pattern = r"^! ?pip install"
    elif language in (*SHELL_LANGUAGES, *POWERSHELL_LANGUAGES):
        pattern = r"^pip install"
    else:
        return code
    lines = code.split("\n")
    for i, line in enumerate(lines):
        match = re.search(pattern, line)
        if match is not None and "-qqq" not in line:
            lines[i] = line.replace(match.group(0), match.group(0) + " -qqq")
    return "\n".join(lines)


@dataclass
class SavedBlock:
    """A code block written to its file in the work directory."""

    language: str
    path: Path


def save_block(block: CodeBlock, work_dir: Path) -> SavedBlock | str:
    """Write ``block`` to its file in ``work_dir``; or the reason it cannot run."""
    language = normalize_language(block.language)
    if language not in SUPPORTED_LANGUAGES:
        return f"unknown language {language}"
    code = silence_pip(block.code, language)
    try:
        name = file_name_from_content(code, work_dir)
    except OutsideWorkDirError:
        return "Filename is not in the workspace"
    path = work_dir.resolve() / (name or default_file_name(code, language))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code, encoding="utf-8")
    return SavedBlock(language, path)

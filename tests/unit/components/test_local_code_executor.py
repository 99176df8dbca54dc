"""LocalCommandLineCodeExecutor, for real: processes of this machine in a work directory."""

import asyncio
import time
from pathlib import Path

import pytest

from agnext_broker import CancellationToken
from agnext_broker.code_executor import (
    Alias,
    CodeBlock,
    CodeExecutor,
    FunctionWithRequirements,
    ImportFromModule,
    LocalCommandLineCodeExecutor,
    with_requirements,
)
from tests.unit.components.processes import (
    entries,
    exists,
    poll_until,
    process_is_alive,
    wait_for_file,
)


@with_requirements(
    python_packages=["pydantic"],
    global_imports=[ImportFromModule("math", ["sqrt"]), Alias("json", "js")],
)
def hypotenuse(a: float, b: float) -> str:
    """The hypotenuse of a right triangle, as JSON."""
    return js.dumps(sqrt(a * a + b * b))  # type: ignore[name-defined]  # noqa: F821


def shout(text: str) -> str:
    return text.upper()


GREET_FROM_STR = FunctionWithRequirements.from_str(
    "def greet(name: str) -> str:\n    return 'hello ' + name\n"
)


async def run(executor: LocalCommandLineCodeExecutor, *blocks: CodeBlock) -> tuple[int, str]:
    result = await executor.execute_code_blocks(list(blocks), CancellationToken())
    return result.exit_code, result.output


async def test_output_and_exit_code_of_python_and_shell_blocks() -> None:
    async with LocalCommandLineCodeExecutor() as executor:
        assert isinstance(executor, CodeExecutor)
        code = "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)"
        assert await run(executor, CodeBlock(code, "python")) == (0, "to stdout\nto stderr\n")
        assert await run(executor, CodeBlock("echo $((6 * 7))", "sh")) == (0, "42\n")
        assert await run(executor, CodeBlock("echo ${BASH_VERSION:+bash}", "bash")) == (
            0,
            "bash\n",
        )


async def test_the_first_failing_block_ends_the_run() -> None:
    async with LocalCommandLineCodeExecutor() as executor:
        exit_code, output = await run(
            executor,
            CodeBlock("print('first')", "python"),
            CodeBlock("import sys; print('second'); sys.exit(3)", "python"),
            CodeBlock("print('never')", "python"),
        )
    assert exit_code == 3
    assert output == "first\nsecond\n"


async def test_an_unknown_language_is_refused() -> None:
    async with LocalCommandLineCodeExecutor() as executor:
        exit_code, output = await run(executor, CodeBlock("puts 1", "ruby"))
    assert exit_code == 1
    assert "unknown language ruby" in output


async def test_a_timeout_kills_the_block_and_its_children(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    code = f"sleep 600 &\necho $! > {child_pid_file}\nsleep 600\n"
    async with LocalCommandLineCodeExecutor(timeout=1) as executor:
        began = time.monotonic()
        exit_code, output = await run(executor, CodeBlock(code, "sh"))
        took = time.monotonic() - began
    assert exit_code == 124
    assert output.endswith("Timeout")
    assert took < 30
    child = int(child_pid_file.read_text())
    await poll_until(lambda: not process_is_alive(child), timeout=10, what="the child is killed")


async def test_processes_a_block_leaves_running_end_with_it(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    async with LocalCommandLineCodeExecutor(timeout=60) as executor:
        exit_code, _ = await run(
            executor, CodeBlock(f"sleep 600 &\necho $! > {child_pid_file}\n", "sh")
        )
    assert exit_code == 0
    child = int(child_pid_file.read_text())
    await poll_until(lambda: not process_is_alive(child), timeout=10, what="the child is killed")


async def test_cancellation_kills_the_block(tmp_path: Path) -> None:
    started = tmp_path / "started"
    token = CancellationToken()
    async with LocalCommandLineCodeExecutor(timeout=600) as executor:
        running = asyncio.ensure_future(
            executor.execute_code_blocks(
                [CodeBlock(f"echo $$ > {started}\nsleep 600", "sh")], token
            )
        )
        pid = int(await wait_for_file(started))
        token.cancel()
        result = await asyncio.wait_for(running, 30)
    assert result.exit_code == 125
    assert result.output.endswith("Cancelled")
    await poll_until(lambda: not process_is_alive(pid), timeout=10, what="the block is killed")


@pytest.mark.parametrize(
    "name",
    ["../escape.py", "../../etc/escape.py", "/tmp/escape-by-absolute-name.py", "link/escape.py"],
)
async def test_a_file_name_outside_the_work_dir_is_refused(tmp_path: Path, name: str) -> None:
    work_dir = tmp_path / "work"
    outside = tmp_path / "outside"
    outside.mkdir()
    work_dir.mkdir()
    (work_dir / "link").symlink_to(outside)
    executor = LocalCommandLineCodeExecutor(work_dir=work_dir)
    exit_code, output = await run(executor, CodeBlock(f"# filename: {name}\nprint('x')", "python"))
    assert exit_code == 1
    assert "Filename is not in the workspace" in output
    assert entries(outside) == []
    assert not exists(tmp_path / "escape.py")
    assert not exists(Path("/tmp/escape-by-absolute-name.py"))


async def test_a_named_file_inside_the_work_dir_is_kept(tmp_path: Path) -> None:
    executor = LocalCommandLineCodeExecutor(work_dir=tmp_path, cleanup_temp_files=False)
    result = await executor.execute_code_blocks(
        [CodeBlock("# filename: tools/hello.py\nprint('hello')", "python")], CancellationToken()
    )
    assert (result.exit_code, result.output) == (0, "hello\n")
    assert result.code_file == str((tmp_path / "tools" / "hello.py").resolve())
    assert (tmp_path / "tools" / "hello.py").read_text().endswith("print('hello')")


async def test_code_files_are_removed_after_the_run_by_default(tmp_path: Path) -> None:
    executor = LocalCommandLineCodeExecutor(work_dir=tmp_path)
    result = await executor.execute_code_blocks(
        [CodeBlock("print(1)", "python")], CancellationToken()
    )
    assert result.code_file is not None
    assert Path(result.code_file).parent == tmp_path
    assert entries(tmp_path) == []


async def test_writing_outside_by_absolute_path_is_not_prevented(tmp_path: Path) -> None:
    # What the local executor does not isolate (the README says so): only the file names it
    # writes code to are kept inside the work directory, not what the code itself does.
    work_dir = tmp_path / "work"
    target = tmp_path / "outside.txt"
    executor = LocalCommandLineCodeExecutor(work_dir=work_dir)
    code = f"open({str(target)!r}, 'w').write('escaped')"
    assert await run(executor, CodeBlock(code, "python")) == (0, "")
    assert target.read_text() == "escaped"


async def test_the_temporary_work_dir_lives_from_start_to_stop() -> None:
    executor = LocalCommandLineCodeExecutor()
    with pytest.raises(RuntimeError, match="start"):
        _ = executor.work_dir
    await executor.start()
    work_dir = executor.work_dir
    assert work_dir.is_dir()
    exit_code, output = await run(executor, CodeBlock("import os; print(os.getcwd())", "python"))
    assert (exit_code, output.strip()) == (0, str(work_dir.resolve()))
    await executor.stop()
    assert not work_dir.exists()


async def test_functions_with_requirements_are_importable() -> None:
    functions = [hypotenuse, shout, GREET_FROM_STR]
    async with LocalCommandLineCodeExecutor(functions=functions) as executor:
        code = (
            "from functions import hypotenuse, shout, greet\n"
            "print(hypotenuse(3, 4), shout('hi'), greet('ann'))"
        )
        assert await run(executor, CodeBlock(code, "python")) == (0, "5.0 HI hello ann\n")
        module = (executor.work_dir / "functions.py").read_text()
    assert "from math import sqrt" in module
    assert "import json as js" in module
    assert "with_requirements" not in module  # the decorator is not copied


async def test_functions_that_do_not_load_fail_the_first_run() -> None:
    broken = FunctionWithRequirements.from_callable(shout, global_imports=["no_such_module_here"])
    async with LocalCommandLineCodeExecutor(functions=[broken]) as executor:
        with pytest.raises(ValueError, match="Functions failed to load"):
            await run(executor, CodeBlock("print(1)", "python"))


def test_functions_are_described_for_a_prompt() -> None:
    executor = LocalCommandLineCodeExecutor(functions=[hypotenuse], functions_module="helpers")
    prompt = executor.format_functions_for_prompt()
    assert "from helpers import foo" in prompt
    assert "def hypotenuse(a: float, b: float) -> str:" in prompt
    assert "The hypotenuse of a right triangle" in prompt


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="Timeout"):
        LocalCommandLineCodeExecutor(timeout=0)
    with pytest.raises(ValueError, match="identifier"):
        LocalCommandLineCodeExecutor(functions_module="not-a-name")


def test_configuration_round_trips(tmp_path: Path) -> None:
    executor = LocalCommandLineCodeExecutor(timeout=7, work_dir=tmp_path, cleanup_temp_files=False)
    model = executor.dump_component()
    assert model.provider == "agnext_broker.code_executor.LocalCommandLineCodeExecutor"
    assert model.component_type == "code_executor"
    loaded = CodeExecutor.load_component(model)
    assert isinstance(loaded, LocalCommandLineCodeExecutor)
    assert loaded.timeout == 7
    assert loaded.work_dir == tmp_path


def test_the_executors_are_also_at_autogen_ext_s_module_paths() -> None:
    from agnext_broker import code_executor
    from agnext_broker.code_executor.docker import DockerCommandLineCodeExecutor
    from agnext_broker.code_executor.local import LocalCommandLineCodeExecutor as Local

    assert Local is code_executor.LocalCommandLineCodeExecutor
    assert DockerCommandLineCodeExecutor is code_executor.DockerCommandLineCodeExecutor

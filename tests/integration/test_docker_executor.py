"""DockerCommandLineCodeExecutor, for real: a container of a local image (tests/integration/
docker_engine.py starts dockerd and makes the image when they are missing). Without Docker these
tests fail, saying what is missing; they are never skipped."""

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agnext_broker import CancellationToken
from agnext_broker.code_executor import (
    Alias,
    CodeBlock,
    CodeExecutor,
    DockerCommandLineCodeExecutor,
    FunctionWithRequirements,
    ImportFromModule,
    with_requirements,
)
from tests.integration.docker_engine import (
    DockerUnavailable,
    ensure_docker_engine,
    ensure_python_image,
)
from tests.unit.components.processes import exists, wait_for_file

pytestmark = pytest.mark.integration


@with_requirements(global_imports=[ImportFromModule("math", ["sqrt"]), Alias("json", "js")])
def hypotenuse(a: float, b: float) -> str:
    """The hypotenuse of a right triangle, as JSON."""
    return js.dumps(sqrt(a * a + b * b))  # type: ignore[name-defined]  # noqa: F821


def shout(text: str) -> str:
    return text.upper()


@pytest.fixture(scope="session")
def image() -> str:
    try:
        ensure_docker_engine()
        return ensure_python_image()
    except DockerUnavailable as e:
        pytest.fail(f"Docker is needed here: {e}", pytrace=False)


@pytest.fixture
async def executor(image: str, tmp_path: Path) -> AsyncIterator[DockerCommandLineCodeExecutor]:
    async with DockerCommandLineCodeExecutor(image, work_dir=tmp_path / "work", timeout=2) as ex:
        yield ex


def container_state(name: str) -> str:
    """``running``, ``exited``..., or ``gone`` when Docker has no such container."""
    inspected = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Status}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return inspected.stdout.strip() if inspected.returncode == 0 else "gone"


def alive_or_gone(pid: str) -> str:
    """A shell check, in the container, that prints whether ``pid`` runs (a zombie is gone)."""
    stat = f"{{ read -r _ _ state _ < /proc/{pid}/stat; }} 2>/dev/null"
    return f'if {stat} && [ "$state" != Z ]; then echo alive; else echo gone; fi'


def remove_container(name: str) -> None:
    subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)


async def run(executor: DockerCommandLineCodeExecutor, *blocks: CodeBlock) -> tuple[int, str]:
    result = await executor.execute_code_blocks(list(blocks), CancellationToken())
    return result.exit_code, result.output


async def test_output_and_exit_code(executor: DockerCommandLineCodeExecutor) -> None:
    code = "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)"
    assert await run(executor, CodeBlock(code, "python")) == (0, "to stdout\nto stderr\n")
    assert await run(executor, CodeBlock("echo $((6 * 7)); pwd", "sh")) == (0, "42\n/workspace\n")
    exit_code, output = await run(
        executor,
        CodeBlock("print('first')", "python"),
        CodeBlock("echo second; exit 3", "sh"),
        CodeBlock("print('never')", "python"),
    )
    assert (exit_code, output) == (3, "first\nsecond\n")


async def test_a_timeout_kills_the_block_and_its_children(
    executor: DockerCommandLineCodeExecutor,
) -> None:
    code = "sleep 600 &\necho $! > child.pid\nsleep 600\n"
    began = time.monotonic()
    exit_code, output = await run(executor, CodeBlock(code, "sh"))
    assert exit_code == 124
    assert output.endswith("Timeout")
    assert time.monotonic() - began < 30
    child = (executor.work_dir / "child.pid").read_text().strip()
    assert await run(executor, CodeBlock(alive_or_gone(child), "sh")) == (0, "gone\n")
    # Nothing but init, the container's keeper and this check runs in the container now (a
    # killed process init has not reaped yet is a zombie, and not counted).
    count = (
        "n=0; for p in /proc/[0-9]*; do read -r _ _ state _ < $p/stat; "
        '[ "$state" = Z ] || n=$((n + 1)); done; echo $n'
    )
    assert await run(executor, CodeBlock(count, "sh")) == (0, "3\n")


async def test_cancellation_kills_the_block(executor: DockerCommandLineCodeExecutor) -> None:
    token = CancellationToken()
    running = asyncio.ensure_future(
        executor.execute_code_blocks([CodeBlock("echo $$ > started\nsleep 600", "sh")], token)
    )
    pid = await wait_for_file(executor.work_dir / "started")
    token.cancel()
    result = await asyncio.wait_for(running, 30)
    assert (result.exit_code, result.output) == (125, "\nCancelled")
    assert await run(executor, CodeBlock(alive_or_gone(pid), "sh")) == (0, "gone\n")


@pytest.mark.parametrize("name", ["../escape.py", "/tmp/escape-by-absolute-name.py"])
async def test_a_file_name_outside_the_work_dir_is_refused(
    executor: DockerCommandLineCodeExecutor, name: str
) -> None:
    exit_code, output = await run(executor, CodeBlock(f"# filename: {name}\nprint(1)", "python"))
    assert exit_code == 1
    assert "Filename is not in the workspace" in output
    assert not exists(executor.work_dir.parent / "escape.py")
    assert not exists(Path("/tmp/escape-by-absolute-name.py"))


async def test_writes_outside_the_work_dir_stay_in_the_container(
    executor: DockerCommandLineCodeExecutor, tmp_path: Path
) -> None:
    host_target = tmp_path / "outside" / "escaped.txt"
    code = (
        "import os\n"
        f"os.makedirs({str(host_target.parent)!r}, exist_ok=True)\n"
        f"open({str(host_target)!r}, 'w').write('escaped')\n"
        "open('/etc/agnext-escape-test', 'w').write('escaped')\n"
        "open('inside.txt', 'w').write('shared')\n"
        f"print(open({str(host_target)!r}).read())\n"
    )
    assert await run(executor, CodeBlock(code, "python")) == (0, "escaped\n")
    # The same code, run by the local executor, writes both files on this machine.
    assert not exists(host_target)
    assert not exists(Path("/etc/agnext-escape-test"))
    assert (executor.work_dir / "inside.txt").read_text() == "shared"


async def test_functions_with_requirements_are_importable(image: str, tmp_path: Path) -> None:
    greet = FunctionWithRequirements.from_str(
        "def greet(name: str) -> str:\n    return 'hi ' + name\n"
    )
    async with DockerCommandLineCodeExecutor(
        image, work_dir=tmp_path, functions=[hypotenuse, shout, greet]
    ) as executor:
        code = (
            "from functions import hypotenuse, shout, greet\n"
            "print(hypotenuse(3, 4), shout('hi'), greet('ann'))"
        )
        assert await run(executor, CodeBlock(code, "python")) == (0, "5.0 HI hi ann\n")


async def test_stop_stops_and_removes_the_container(image: str) -> None:
    executor = DockerCommandLineCodeExecutor(image)
    with pytest.raises(ValueError, match="not running"):
        await run(executor, CodeBlock("print(1)", "python"))
    await executor.start()
    work_dir = executor.work_dir
    assert container_state(executor.container_name) == "running"
    assert await run(executor, CodeBlock("print(1)", "python")) == (0, "1\n")
    await executor.stop()
    assert container_state(executor.container_name) == "gone"
    assert not work_dir.exists()


async def test_without_auto_remove_stop_leaves_a_stopped_container(image: str) -> None:
    executor = DockerCommandLineCodeExecutor(image, auto_remove=False)
    await executor.start()
    try:
        await executor.restart()
        assert await run(executor, CodeBlock("echo again", "sh")) == (0, "again\n")
        await executor.stop()
        assert container_state(executor.container_name) == "exited"
    finally:
        remove_container(executor.container_name)


async def test_init_command_runs_before_each_block(image: str) -> None:
    async with DockerCommandLineCodeExecutor(image, init_command="export GREETING=hello") as ex:
        assert await run(ex, CodeBlock("echo $GREETING", "sh")) == (0, "hello\n")


def test_configuration_round_trips(image: str) -> None:
    executor = DockerCommandLineCodeExecutor(image, timeout=9, init_command="true")
    loaded = CodeExecutor.load_component(executor.dump_component())
    assert isinstance(loaded, DockerCommandLineCodeExecutor)
    assert (loaded.timeout, loaded.container_name) == (9, executor.container_name)

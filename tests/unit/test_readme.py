import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_agent_example_runs_and_prints_the_balance(tmp_path: Path) -> None:
    (example,) = [block for block in python_blocks() if "asyncio.run(main())" in block]
    script = tmp_path / "example.py"
    script.write_text(example)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_readme_commands_exist() -> None:
    text = README.read_text()
    root = README.parent
    for script in re.findall(r"\./(scripts/[\w.]+)", text):
        assert (root / script).is_file(), script

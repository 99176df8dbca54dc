import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agnext_broker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_prints_the_conversation_and_the_report() -> None:
    result = run_cli("demo", "--keys", "red,blue", "--items", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "send     RunBatch     -> coordinator/default" in out
    assert out.count("publish  WorkItem") == 6
    assert out.count("publish  ItemTallied") == 6
    assert "report from reporter/default" in out
    assert "6 item(s)" in out
    # amounts are 1, 2, 3 for each key
    assert "red        count    3  total      6" in out
    assert 'tallier/blue: {"count": 3, "total": 6}' in out
    assert result.stderr == ""


def test_demo_rejects_bad_arguments_with_a_clear_line() -> None:
    result = run_cli("demo", "--items", "0")
    assert result.returncode == 2
    assert "Error: Invalid value for '--items': 0 is not in the range x>=1." in result.stderr
    assert "Traceback" not in result.stderr

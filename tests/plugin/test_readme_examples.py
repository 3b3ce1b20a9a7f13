"""The README's examples run as written: every code block that starts with `# NAME.py` or
`# NAME.yaml` is saved under that name in an empty folder, the test files are run by pytest and the
scripts by Python, with nothing else installed or copied in.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```\w*\n# ([\w.-]+\.(?:py|yaml))\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _named_blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    for name, body in BLOCK.findall(README.read_text()):
        assert name not in blocks, f"two README blocks are named {name}"
        blocks[name] = f"# {name}\n{body}"
    return blocks


@pytest.fixture
def examples(pytester: pytest.Pytester) -> dict[str, str]:
    blocks = _named_blocks()
    for name, text in blocks.items():
        (pytester.path / name).write_text(text)
    return blocks


def test_the_pytest_examples_pass(pytester: pytest.Pytester, examples: dict[str, str]) -> None:
    assert {"test_checkout.py", "test_scenarios.py", "my-scenarios.yaml"} <= set(examples)
    result = pytester.runpytest_subprocess("-W", "error", "test_checkout.py", "test_scenarios.py")
    result.assert_outcomes(passed=7)


@pytest.mark.parametrize("script", ["outside_pytest.py", "in_process.py"])
def test_the_scripts_outside_pytest_run(pytester: pytest.Pytester, examples: dict[str, str], script: str) -> None:
    assert script in examples
    result = subprocess.run(
        [sys.executable, "-W", "error", script], cwd=pytester.path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr

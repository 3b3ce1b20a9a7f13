"""The pytest example, examples/checkout, passes its own tests run as a user would run them
(`pytest` in its folder, the plugin's `payments_sandbox` fixture serving each test), and each of them
ends with `assert_no_findings()`: the app is a client the sandbox finds nothing wrong with.
"""

from __future__ import annotations

from pathlib import Path

from helpers import run_pytest_in

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "checkout"


def test_the_checkout_example_passes_with_no_findings() -> None:
    result = run_pytest_in(EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout

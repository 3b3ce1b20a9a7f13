"""The pytest example, examples/checkout, passes its own tests run as a user would run them
(`pytest` in its folder, the plugin's `payments_sandbox` fixture serving each test), and each of them
ends with `assert_no_findings()`: the app is a client the sandbox finds nothing wrong with.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "checkout"


def test_the_checkout_example_passes_with_no_findings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout

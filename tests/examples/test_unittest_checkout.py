"""The unittest example, examples/unittest_checkout, passes its own tests as its README says to run
them: `python -m unittest -v` in its folder, with no pytest involved. That covers `sandbox.Sandbox`
(a real server for the test class) and the in-process way (`create_app` + `httpx.ASGITransport`).
Each of its tests ends by asserting that the sandbox found nothing wrong with the shop's calls
(GET /__sandbox/findings is empty). Afterwards no server of that run is left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "unittest_checkout"


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/__sandbox/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_unittest_example_passes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "unittest", "-v"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where Sandbox puts the server's log, named by port
    )
    assert result.returncode == 0, result.stderr
    assert "Ran 9 tests" in result.stderr
    assert result.stderr.rstrip().endswith("OK")
    [log] = tmp_path.glob("sandbox-*.log")
    port = int(log.name.split("-")[1])
    assert not _serving(port), "the example's server is stopped when its test class is done"


def test_the_example_is_not_collected_by_pytest_too() -> None:
    """It is run above, once; pytest's default file patterns (test_*.py, *_test.py) skip tests.py."""
    assert not list(EXAMPLE.glob("test_*.py"))
    assert not list(EXAMPLE.glob("*_test.py"))

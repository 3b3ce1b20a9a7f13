"""The Node example, examples/node-checkout, passes its own tests (`npm test`) against a real
`payments-sandbox serve` started here, as a team whose app is written in Node would run it in CI.

`npm ci` runs only when node_modules is missing or was installed from another package-lock.json (a
stamp in node_modules, which git ignores, holds the lock file's hash), so a second run costs only
`npm test`. Where node or npm is missing the test skips, unless PAYMENTS_SANDBOX_REQUIRE_NODE is set
(CI sets it): then it fails, so a CI machine without Node cannot pass by skipping. Afterwards the
sandbox has no finding about any tenant the run used: the checkout is a client that does it right.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from sandbox.launcher import start

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node-checkout"
STAMP = EXAMPLE / "node_modules" / ".payments-sandbox-lock-sha256"


def npm(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> None:
    """Run `npm ARGS` in the example; on a non-zero exit fail with npm's output."""
    result = subprocess.run(
        ["npm", *args],
        cwd=EXAMPLE,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"npm {' '.join(args)} exited {result.returncode}:\n{result.stdout[-20000:]}"


def install() -> None:
    """`npm ci` unless node_modules was installed from this very package-lock.json."""
    lock = hashlib.sha256((EXAMPLE / "package-lock.json").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == lock:
        return
    npm("ci", "--prefer-offline", "--no-audit", "--no-fund")
    STAMP.write_text(lock)


@pytest.mark.timeout(600)
def test_node_checkout_passes_its_tests_against_the_sandbox(tmp_path: Path) -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        reason = "node and npm are needed for examples/node-checkout"
        if os.environ.get("PAYMENTS_SANDBOX_REQUIRE_NODE"):
            pytest.fail(f"{reason}, and PAYMENTS_SANDBOX_REQUIRE_NODE is set")
        pytest.skip(f"{reason} (set PAYMENTS_SANDBOX_REQUIRE_NODE to fail instead)")
    install()
    with start(["--log-level", "warning"], log_dir=tmp_path) as server:
        npm("test", env={"PAYMENTS_SANDBOX_URL": server.base_url}, timeout=180)
        # No bearer token: the journal and the findings of every tenant the run made (one per test).
        calls = httpx.get(f"{server.base_url}/__sandbox/requests", timeout=10).json()["requests"]
        findings = httpx.get(f"{server.base_url}/__sandbox/findings", timeout=10).json()

    assert len({call["tenant"] for call in calls}) >= 5, "the example's tests ran against this sandbox"
    assert findings == {"findings": []}, "the checkout is a well-behaved client"

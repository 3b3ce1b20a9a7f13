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
    assert {"test_checkout.py", "test_scenarios.py", "test_webhooks.py", "my-scenarios.yaml"} <= set(examples)
    result = pytester.runpytest_subprocess("-W", "error", "test_checkout.py", "test_scenarios.py", "test_webhooks.py")
    result.assert_outcomes(passed=9)


def test_the_signature_check_accepts_what_the_sandbox_signs_and_nothing_else(
    pytester: pytest.Pytester, examples: dict[str, str]
) -> None:
    assert "verify_signature.py" in examples
    script = (
        "import time\n"
        "from sandbox.webhooks import sign\n"
        "from verify_signature import verify_signature\n"
        'body, now = b\'{"id": "evt_1"}\', int(time.time())\n'
        "assert verify_signature('whsec_a', sign('whsec_a', now, body), body)\n"
        "assert not verify_signature('whsec_a', sign('whsec_b', now, body), body)\n"
        "assert not verify_signature('whsec_a', sign('whsec_a', now, body), body + b' ')\n"
        "assert not verify_signature('whsec_a', sign('whsec_a', now - 301, body), body)\n"
        "assert not verify_signature('whsec_a', '', body)\n"
        "assert not verify_signature('whsec_a', 't=x,v1=00', body)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], cwd=pytester.path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_typescript_signature_check_is_the_node_examples_own() -> None:
    """The README's TypeScript block is examples/node-checkout/src/verifySignature.ts, which the node
    example's tests run against real deliveries (tests/examples/test_node_checkout.py)."""
    block = re.search(r"^```ts\n// verifySignature.ts\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert block is not None
    source = (README.parents[0] / "examples" / "node-checkout" / "src" / "verifySignature.ts").read_text()
    assert block.group(1).strip() in source


@pytest.mark.parametrize("script", ["outside_pytest.py", "in_process.py"])
def test_the_scripts_outside_pytest_run(pytester: pytest.Pytester, examples: dict[str, str], script: str) -> None:
    assert script in examples
    result = subprocess.run(
        [sys.executable, "-W", "error", script], cwd=pytester.path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr

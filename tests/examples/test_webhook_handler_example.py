"""The webhook handler example, examples/webhook_handler, passes its own tests run as a user would run
them (`pytest` in its folder): a real sandbox delivers to the handler served by uvicorn, duplicated,
out of order, forged and retried, and the handler's table ends up right; the app makes no mistake
the sandbox would report.
"""

from __future__ import annotations

from pathlib import Path

from helpers import run_pytest_in

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_handler"


def test_the_webhook_handler_example_passes() -> None:
    result = run_pytest_in(EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout

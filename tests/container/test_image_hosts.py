"""The Host guard inside the image: bound to 0.0.0.0 the sandbox answers any Host (a service name
such as `payments-sandbox` included); with PAYMENTS_SANDBOX_ALLOWED_HOSTS it answers those names
and the loopback ones only, which is how the README says to pin it down."""

from __future__ import annotations

import httpx
from container_support import Container, RunImage

NAMES = ("localhost", "127.0.0.1", "payments-sandbox", "payments-sandbox:8000")


def _status(container: Container, host: str) -> int:
    return httpx.get(f"{container.base_url}/__sandbox/health", headers={"Host": host}, timeout=10).status_code


def test_any_host_by_default(container: Container) -> None:
    assert [_status(container, name) for name in (*NAMES, "sandbox.ci.internal")] == [200] * 5


def test_allowed_hosts_pins_the_names(run_image: RunImage) -> None:
    with run_image(env={"PAYMENTS_SANDBOX_ALLOWED_HOSTS": "payments-sandbox"}) as container:
        assert [_status(container, name) for name in NAMES] == [200] * 4
        assert _status(container, "evil.example") == 421

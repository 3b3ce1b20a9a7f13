"""`docker stop` ends the sandbox at once with exit code 0: the server is PID 1 (the entrypoint
execs it) and answers SIGTERM itself, so docker never waits out its 10 s and kills it."""

from __future__ import annotations

import time

import httpx
from container_support import RunImage


def test_docker_stop_exits_0_quickly(run_image: RunImage) -> None:
    with run_image() as container:
        charge = {"amount": 1500, "currency": "USD"}
        made = httpx.post(
            f"{container.base_url}/v1/payments/charge", json=charge, headers={"Authorization": "Bearer t"}, timeout=10
        )
        assert made.status_code == 200
        started = time.monotonic()
        container.docker.run("stop", container.name, timeout=30)
        seconds = time.monotonic() - started
        assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()
        assert seconds < 2, f"docker stop took {seconds:.2f} s"
        assert "Traceback" not in container.logs()

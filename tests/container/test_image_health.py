"""The image's HEALTHCHECK (python, as the image has no curl) turns the container healthy, which is
what `depends_on: condition: service_healthy` and CI services wait for."""

from __future__ import annotations

import time

from container_support import Container


def test_healthcheck_turns_healthy(container: Container) -> None:
    deadline = time.monotonic() + 60  # the first check runs one interval (5 s) after the start
    status = container.inspect("{{.State.Health.Status}}")
    while status != "healthy" and time.monotonic() < deadline:
        assert status == "starting", container.inspect("{{json .State.Health}}")
        time.sleep(0.5)
        status = container.inspect("{{.State.Health.Status}}")
    assert status == "healthy", container.inspect("{{json .State.Health}}")

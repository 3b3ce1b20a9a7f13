"""The image holds the server's runtime only and runs it as a user other than root."""

from __future__ import annotations

from container_support import Container


def test_server_runs_as_non_root(container: Container) -> None:
    owner = container.exec("python", "-c", "import os; print(os.stat('/proc/1').st_uid, os.getuid())")
    assert owner.returncode == 0, owner.stderr
    assert owner.stdout.split() == ["10001", "10001"]  # PID 1, the server, and what `docker exec` gets
    assert container.inspect("{{.Config.User}}") == "10001:10001"


def test_no_test_or_build_tools(container: Container) -> None:
    for module in ("pytest", "xprocess", "pip", "setuptools"):
        found = container.exec("python", "-c", f"import {module}")
        assert found.returncode == 1, f"{module} is in the image"
        assert "ModuleNotFoundError" in found.stderr
    assert container.exec("python", "-c", "import sandbox.app, uvicorn").returncode == 0

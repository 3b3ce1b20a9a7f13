"""The built wheel carries the contract and the scenarios, and serves requests from a fresh venv."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("payments_sandbox-*.whl")
    return built


def test_wheel_contains_contract_scenarios_and_schemas(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "sandbox/openapi.json",
        "sandbox/scenarios/default.yaml",
        "sandbox/scenarios/chaos/flaky-network.yaml",
        "sandbox/scenarios/chaos/bad-day.yaml",
        "sandbox/scenario-schema.json",
        "sandbox/control-openapi.json",
        "sandbox/py.typed",
    ):
        assert needed in names


def test_installed_wheel_serves_requests(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Run from an empty folder so nothing from the source checkout can be picked up.
    server = subprocess.Popen(
        # With a chaos profile: the seed's first draws (0.84, 0.76, ...) fire none of its 1% rules.
        [str(venv / "bin" / "payments-sandbox"), "serve", "--port", str(port), "--chaos", "flaky-network"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(base + "/__sandbox/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the installed sandbox never became healthy"
                time.sleep(0.1)
        assert "site-packages" in health.json()["spec"]["path"]
        assert all("site-packages" in s["path"] for s in health.json()["scenarios"])
        assert health.json()["scenarios"][-1]["path"].endswith("sandbox/scenarios/chaos/flaky-network.yaml")
        assert health.json()["chaos"] == {"profile": "flaky-network", "seed": 0}
        charge = httpx.post(
            base + "/v1/payments/charge",
            json={"amount": 1500, "currency": "USD"},
            headers={"Authorization": "Bearer wheel"},
        )
        assert charge.status_code == 200
        declined = httpx.post(
            base + "/v1/payments/charge",
            json={"amount": 100005, "currency": "USD"},
            headers={"Authorization": "Bearer wheel"},
        )
        assert declined.json()["error"]["decline_code"] == "generic_decline"
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(30)
        if server.stderr:
            server.stderr.close()
    assert code == 0

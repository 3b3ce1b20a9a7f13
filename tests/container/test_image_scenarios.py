"""Scenario files mounted at /scenarios are loaded ahead of the built-in pack; a folder with none
in it (the image's own /scenarios, or an empty mount) starts with the built-in pack alone."""

from __future__ import annotations

from pathlib import Path

import httpx
from container_support import RunImage

TEAPOT = """\
rules:
  - name: teapot
    applies_to: charge
    when: {amount: 4180}
    then: {status: 402, error: {code: card_declined, decline_code: teapot, message: I am a teapot.}}
"""


def _charge(base_url: str, amount: int) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/payments/charge",
        json={"amount": amount, "currency": "USD"},
        headers={"Authorization": "Bearer scenarios"},
        timeout=10,
    )


def _readable_folder(path: Path) -> Path:
    """The container's user (uid 10001) must read the mount: pytest makes its folders 0700."""
    path.mkdir()
    path.chmod(0o755)
    return path


def test_mounted_file_is_picked_up(run_image: RunImage, tmp_path: Path) -> None:
    folder = _readable_folder(tmp_path / "scenarios")
    (folder / "teapot.yaml").write_text(TEAPOT)
    (folder / "teapot.yaml").chmod(0o644)
    with run_image(volumes=[f"{folder}:/scenarios:ro"]) as container:
        teapot = _charge(container.base_url, 4180)
        assert teapot.status_code == 402, teapot.text
        assert teapot.headers["sandbox-scenario"] == "teapot"
        assert teapot.json()["error"]["decline_code"] == "teapot"
        assert _charge(container.base_url, 100005).headers["sandbox-scenario"] == "generic_decline"  # built-in
        loaded = httpx.get(f"{container.base_url}/__sandbox/health", timeout=10).json()["scenarios"]
        assert [entry["path"].rsplit("/", 1)[-1] for entry in loaded] == ["teapot.yaml", "default.yaml"]


def test_empty_mount_starts_with_built_in_pack(run_image: RunImage, tmp_path: Path) -> None:
    folder = _readable_folder(tmp_path / "empty")
    with run_image(volumes=[f"{folder}:/scenarios:ro"]) as container:
        assert _charge(container.base_url, 4180).status_code == 200
        assert _charge(container.base_url, 100005).headers["sandbox-scenario"] == "generic_decline"

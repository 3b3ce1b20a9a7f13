"""GET /__sandbox/health: liveness, the version, and fingerprints of what was loaded."""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_health_is_200_without_auth(make_client):
    response = await make_client().get("/__sandbox/health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == "ok"


async def test_health_reports_the_installed_version(make_client):
    body = (await make_client().get("/__sandbox/health")).json()
    assert body["version"] == version("payments-sandbox")


async def test_health_fingerprints_the_loaded_spec(make_client):
    spec = (await make_client().get("/__sandbox/health")).json()["spec"]
    # The path is wherever the package found its bundled copy (source tree or wheel); the content
    # must be the repository's contract either way.
    assert Path(spec["path"]).name == "openapi.json"
    assert spec["sha256"] == sha256(Path(spec["path"])) == sha256(ROOT / "openapi.json")


async def test_health_fingerprints_the_loaded_scenarios(make_client):
    scenarios = (await make_client().get("/__sandbox/health")).json()["scenarios"]
    assert [Path(s["path"]).name for s in scenarios] == ["default.yaml"]
    [loaded] = scenarios
    assert loaded["sha256"] == sha256(Path(loaded["path"])) == sha256(ROOT / "scenarios" / "default.yaml")

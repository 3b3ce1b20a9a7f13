"""`bench/against.py`, the regression check against earlier revisions, run briefly: it serves a
revision unpacked from git beside this checkout and the baseline, loads all three, and reports
each. Timings are not asserted (they are the tool's output, not its behaviour)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGAINST = REPO / "bench" / "against.py"

pytestmark = pytest.mark.xdist_group("soak")  # load runs: one at a time, beside the soak


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(AGAINST), *args], cwd=REPO / "bench", capture_output=True, text=True, timeout=180
    )


def test_a_revision_is_served_from_git_and_measured_beside_this_checkout(tmp_path: Path) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    if head.returncode != 0:  # a copy of the tree without its history (an unpacked archive)
        pytest.skip("not a git checkout: bench/against.py serves revisions unpacked from git")
    out = tmp_path / "against.json"
    done = run("HEAD", "--rounds", "1", "--duration", "1", "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == {"POST", "GET"}
    name = f"HEAD ({head.stdout.strip()[:12]})"
    for op, servers in figures.items():
        assert set(servers) == {"this checkout", "baseline", name}, op
        for server, row in servers.items():
            assert row["errors"] == 0, (op, server)  # every answer 2xx: the revision really served charges
            assert row["rps"] > 0, (op, server)
            assert row["per_cpu_second"] > 0, (op, server)
            assert len(row["rounds_vs_checkout"]) == 1
    assert "POST /charge: 1 rounds" in done.stdout
    assert "GET /charge/{id}: 1 rounds" in done.stdout


def test_an_unknown_revision_is_named_and_nothing_is_started() -> None:
    done = run("no-such-revision", "--rounds", "1", "--duration", "1")
    assert done.returncode != 0
    assert "'no-such-revision' is not a commit of this repository" in done.stderr
    assert "req/s" not in done.stdout

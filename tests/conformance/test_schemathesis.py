"""Conformance: schemathesis, a test generator nobody here wrote, against a real sandbox process.

The CLI runs every check it has (`--checks all`) in every mode (valid and invalid data, `--mode
all`) and every phase (examples, coverage, fuzzing, stateful), with a fixed seed, against the
bundled `openapi.json`; the test fails on any finding and prints schemathesis' report.

The server under test is started with two flags, each for a reason:

- `--no-default-scenarios`: the built-in pack scripts 500/503/504 on magic amounts (100096,
  100503, 100504) by design, and `not_a_server_error` would rightly flag a 5xx whenever the
  generator hits one. Scripted statuses are checked separately, against the default pack, by
  test_scripted_statuses.py (each is documented, each body validates).
- `--jwt-secret`: without it any bearer token names a tenant (by design: the token *is* the
  tenant), so `ignored_auth` would flag every "invalid" token as accepted. With a secret only a
  signed HS256 JWT passes, which is what the contract's `bearerFormat: JWT` says, so the auth
  checks run as their authors intended.

The hooks in schemathesis_hooks.py give each request a fresh Idempotency-Key and drop only the
400s of state-dependent money rules and of the known findings (see that module's docstring).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from uuid import uuid4

from conformance_support import JWT_SECRET
from helpers import jwt
from sandbox_server import SandboxProcess

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi.json"
HOOKS = Path(__file__).resolve().parent / "schemathesis_hooks.py"
SEED = 20260314
# 100 examples per operation and phase: about 700-900 requests, 20-40 s on two cores.
MAX_EXAMPLES = 100
OPERATIONS = {"POST /charge", "GET /charge/{id}", "GET /charges", "POST /refund"}


def _schemathesis() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    assert Path(found).exists(), "the schemathesis CLI is not installed (pip install -e '.[test]')"
    return found


def test_schemathesis_finds_nothing(strict_server: SandboxProcess, tmp_path: Path) -> None:
    token = jwt({"sub": f"conformance-{uuid4().hex}"}, JWT_SECRET)
    log = tmp_path / "calls.jsonl"
    report = tmp_path / "report.json"
    command = [
        _schemathesis(),
        "run",
        str(SPEC),
        "--url",
        f"{strict_server.base_url}/v1/payments",
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--mode",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    env = {
        **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
        "NO_PROXY": "127.0.0.1,localhost",
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "CONFORMANCE_LOG": str(log),
    }
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False)
    output = f"$ {' '.join(command)}\n{run.stdout}\n{run.stderr}"
    print(output)

    assert run.returncode == 0, f"schemathesis reported findings:\n{output}"
    summary = json.loads(report.read_text())
    assert summary["operations"] == {
        "total": 4,
        "selected": 4,
        "tested": 4,
        "errored": 0,
        "skipped": 0,
        "skip_reasons": [],
    }, output
    assert {name: phase["status"] for name, phase in summary["phases"].items()} == dict.fromkeys(
        ("examples", "coverage", "fuzzing", "stateful"), "success"
    ), output
    assert summary["errors"] == [], output

    events = [json.loads(line) for line in log.read_text().splitlines()]
    calls = Counter((e["operation"], e["mode"]) for e in events if e["event"] == "call")
    for operation in OPERATIONS:
        # Every operation was reached with valid and with invalid data.
        assert calls[(operation, "positive")] >= 5, calls
        assert calls[(operation, "negative")] >= 5, calls
    statuses = Counter(e["status"] for e in events if e["event"] == "call")
    assert statuses[200] > 0, statuses
    assert not [s for s in statuses if s >= 500], statuses
    dropped = Counter(e["reason"] for e in events if e["event"] == "dropped")
    print(f"calls by (operation, mode): {dict(calls)}\nstatuses: {dict(statuses)}\ndropped failures: {dict(dropped)}")

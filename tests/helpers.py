"""Helpers shared by several test suites (tests/ is on the import path: `from helpers import jwt`).

Also: whether a process still runs (`process_alive`), and a scenario document with one mistake at a
known line (`DUPLICATE_NAMES`), for the suites that check how a bad file is reported.

JWTs are built by hand here, not with PyJWT, so that the tests pin the wire format, including
tokens no library would write: NaN claims, a header that is not an object, a PEM as the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Two rules with one name: the first at line 2, the second (the mistake) at line 6.
DUPLICATE_NAMES = (
    "rules:\n"
    "  - name: twice\n"
    "    applies_to: charge\n"
    "    when: {amount: 5000}\n"
    "    then: {status: 200}\n"
    "  - name: twice\n"
    "    applies_to: charge\n"
    "    when: {amount: 5001}\n"
    "    then: {status: 200}\n"
)


def process_alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (dead, waiting for whoever adopted it to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def b64url(raw: bytes) -> str:
    """base64url without padding, as JWTs write it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims: Any, secret: str | bytes = "s", alg: str = "HS256", header: Any = None) -> str:
    """A JWT of `claims` signed with HMAC-SHA256 under `secret`, whatever `alg` the header names.

    `claims` given as bytes are the payload as is (for JSON that `json.dumps` cannot write);
    `header`, when given, replaces the usual `{"alg": alg, "typ": "JWT"}`.
    """
    head = b64url(json.dumps(header if header is not None else {"alg": alg, "typ": "JWT"}).encode())
    body = b64url(claims if isinstance(claims, bytes) else json.dumps(claims).encode())
    key = secret.encode() if isinstance(secret, str) else secret
    signature = b64url(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{signature}"


UI = "/__sandbox/ui"  # the dashboard's pages
HTML = {"Accept": "text/html,application/xhtml+xml"}  # what a browser accepts


async def page(client: Any, path: str, status: int = 200, **params: str) -> str:
    """A dashboard page as a browser asks for it (`client`: an httpx.AsyncClient): its HTML, once its
    status and security headers are checked."""
    response = await client.get(UI + path, params=params, headers=HTML)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    text: str = response.text
    return text


def charge(tenant: Any, amount: int = 1000, **extra: Any) -> dict[str, Any]:
    """POST /charge as `tenant` (a sandbox.remote.Tenant): the answer's JSON (never a 5xx)."""
    with tenant.client() as client:
        answer = client.post("/charge", json={"amount": amount, "currency": "USD", **extra})
    assert answer.status_code < 500, answer.text
    made: dict[str, Any] = answer.json()
    return made


def refund(tenant: Any, charge_id: str, **extra: Any) -> dict[str, Any]:
    """POST /refund as `tenant`: the answer's JSON."""
    with tenant.client() as client:
        answer = client.post("/refund", json={"charge_id": charge_id, **extra})
    made: dict[str, Any] = answer.json()
    return made


def attempts_logged(tenant: Any, hook_id: str, count: int) -> list[dict[str, Any]]:
    """A webhook endpoint's attempts (newest first) once `count` are logged: an attempt is logged
    once its answer is in, a moment after the receiver has seen it."""
    deadline = time.monotonic() + 5
    while len(attempts := tenant.deliveries(hook_id)) < count:
        assert time.monotonic() < deadline, attempts
        time.sleep(0.05)
    found: list[dict[str, Any]] = attempts
    return found


def run_pytest_in(folder: Path) -> subprocess.CompletedProcess[str]:
    """`python -m pytest -q` in `folder`, as a user runs an example's own tests (no cache written)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )

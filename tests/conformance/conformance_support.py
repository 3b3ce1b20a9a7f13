"""Start and stop real `python -m sandbox serve` processes for the conformance tests.

The conformance run talks to the sandbox the way a client does: over TCP on 127.0.0.1, through
uvicorn. Each fixture starts its own process on a free port, waits for the health endpoint, and
at teardown stops it with SIGTERM and checks that it exits 0 without a traceback in its log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker

HEALTH = "/__sandbox/health"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
JWT_SECRET = "conformance-secret"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], log_dir: Path) -> Server:
    port = _free_port()
    log = log_dir / f"sandbox-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--log-level", "warning", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the sandbox exited with {proc.returncode} before it was ready:\n{log.read_text()}")
            try:
                if client.get(server.base_url + HEALTH).status_code == 200:
                    return server
            except httpx.TransportError:
                time.sleep(0.05)
    proc.kill()
    proc.wait()
    pytest.fail(f"the sandbox did not answer {HEALTH} within {START_TIMEOUT} s:\n{log.read_text()}")


def stop(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        pytest.fail(f"the sandbox ignored SIGTERM for {STOP_TIMEOUT} s:\n{server.log.read_text()}")
    log = server.log.read_text(errors="replace")
    assert code == 0, f"the sandbox exited with {code} after SIGTERM:\n{log}"
    assert "Traceback" not in log, log


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(sub: str, secret: str = JWT_SECRET) -> str:
    """An HS256 JWT naming tenant `sub`, signed with `secret` (no expiry)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"sub": sub}).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "openapi.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
OPERATIONS = {"charge": ("/charge", "post"), "refund": ("/refund", "post")}


def inline(node: Any) -> Any:
    """`node` with every local `$ref` of the bundled contract replaced by its target."""
    if isinstance(node, list):
        return [inline(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return inline(target)
    return {key: inline(value) for key, value in node.items()}


def documented_responses(path: str, method: str) -> dict[str, Any]:
    """Status code (as text) -> the contract's response object for that status, refs inlined."""
    responses: dict[str, Any] = inline(SPEC["paths"][path][method]["responses"])
    return responses


def body_validator(path: str, method: str) -> Any:
    """An OpenAPI 3.0 validator of the contract's JSON request body for the operation."""
    schema = inline(SPEC["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"])
    return OAS30Validator(schema)


def response_problems(path: str, method: str, response: httpx.Response) -> list[str]:
    """What is wrong with `response` by the contract: an undocumented status, a body off-schema."""
    documented = documented_responses(path, method)
    where = f"{method.upper()} {path} -> {response.status_code}"
    entry = documented.get(str(response.status_code))
    if entry is None:
        return [f"{where}: status not documented (documented: {sorted(documented)})"]
    schema = entry.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return []
    if response.headers.get("content-type", "").split(";")[0] != "application/json":
        return [f"{where}: Content-Type {response.headers.get('content-type')!r}, documented application/json"]
    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
    errors = [e.message for e in validator.iter_errors(response.json())]
    return [f"{where}: {message} in {response.text[:300]}" for message in errors]

"""Helpers of the conformance tests: the contract's documented responses, the JWT secret, clean stops.

The conformance run talks to the sandbox the way a client does: over TCP on 127.0.0.1, through
uvicorn. Each fixture starts its own process (tests/sandbox_server.py) and at teardown stops it
with SIGTERM and checks that it exits 0 without a traceback in its log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from sandbox_server import SandboxProcess

from sandbox.openapi import deref

JWT_SECRET = "conformance-secret"


def stop(server: SandboxProcess) -> None:
    """SIGTERM, then the exit must be clean: code 0 and no traceback in the log."""
    code = server.stop()
    assert code == 0, f"the sandbox exited with {code} after SIGTERM:\n{server.log()}"
    assert "Traceback" not in server.log(), server.log()


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
        return inline(deref(node, SPEC))
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

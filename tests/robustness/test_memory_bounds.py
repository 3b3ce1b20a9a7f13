"""What the sandbox keeps is bounded: in entries (the journal, idempotency keys) and in bytes.

The first test checks the documented bounds through the public surface. The others send small
hostile inputs that a bounded store should absorb without growing, and read the server's memory
from /proc/PID/status (VmRSS now, VmHWM the peak): a growth of 30 MB is the budget, against
effects of 100 MB and more when the bound is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import httpx
from sandbox_server import API, SandboxProcess

MB = 1024
BUDGET_KB = 30 * MB


def test_journal_and_idempotency_store_keep_only_their_configured_number(
    start_server: Callable[..., SandboxProcess],
) -> None:
    server = start_server("--journal-size", "50", "--idempotency-keys", "20")
    with server.client(f"bounds-{uuid4().hex}") as client:

        def charge(key: str) -> httpx.Response:
            response = client.post(
                f"{API}/charge", json={"amount": 1500, "currency": "USD"}, headers={"Idempotency-Key": key}
            )
            assert response.status_code == 200, response.text
            return response

        first = charge("k0")
        for n in range(1, 100):
            charge(f"k{n}")
        recent = charge("k99")
        evicted = charge("k0")
        journal = client.get("/__sandbox/requests").json()["requests"]
        total = client.get(f"{API}/charges").json()["total"]

    assert recent.headers.get("Idempotent-Replayed") == "true"  # one of the last 20 keys: replayed
    assert evicted.headers.get("Idempotent-Replayed") is None  # the 100th key ago: forgotten, so a new charge
    assert evicted.json()["id"] != first.json()["id"]
    assert total == 101
    assert len(journal) == 50


def test_journal_memory_is_bounded_by_bytes_not_only_entries(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--journal-size", "500")
    amplifier = b"[" + b",".join([b"[]"] * 2730) + b"]"  # 8,191 bytes of JSON, refused as invalid_body
    with server.client(f"journal-{uuid4().hex}", headers={"Content-Type": "application/json"}) as client:
        for _ in range(500):  # fill the journal with ordinary entries first
            client.get(f"{API}/charges")
        before = server.memory_kb()
        for _ in range(600):
            response = client.post(f"{API}/charge", content=amplifier)
            assert response.status_code == 400, response.text
        after = server.memory_kb()

    assert after - before < BUDGET_KB, f"RSS grew by {(after - before) // MB} MB for a 500-entry journal"


def test_journal_does_not_keep_oversized_idempotency_keys(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--journal-size", "200")
    long_key = "k" * 12_000  # refused as over 255 characters, but under the 16 KiB header limit
    huge_key = "k" * (256 * 1024)  # refused before any endpoint sees it
    with server.client(f"journal-{uuid4().hex}") as client:
        long = client.post(
            f"{API}/charge", json={"amount": 1500, "currency": "USD"}, headers={"Idempotency-Key": long_key}
        )
        huge = client.post(
            f"{API}/charge", json={"amount": 1500, "currency": "USD"}, headers={"Idempotency-Key": huge_key}
        )
        journal = client.get("/__sandbox/requests").json()["requests"]

    assert long.status_code == 400, long.text
    assert long.json()["error"]["param"] == "Idempotency-Key"
    assert huge.status_code == 431, huge.text
    assert huge.json()["error"]["code"] == "headers_too_large"
    assert [len(entry["idempotency_key"]) for entry in journal] == [255]


def _alias_bomb(levels: int) -> str:
    """A scenario document of about 500 bytes whose YAML aliases expand to 10**levels strings."""
    lines = [
        "rules:",
        "  - name: bomb",
        "    applies_to: charge",
        "    when:",
        "      metadata:",
        '        l0: &l0 ["xxxx","xxxx","xxxx","xxxx","xxxx","xxxx","xxxx","xxxx","xxxx","xxxx"]',
    ]
    lines += [f"        l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    lines.append("    then: {}")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server()
    document = _alias_bomb(7)
    assert len(document) < 600
    peak_before = server.memory_kb("VmHWM")
    with server.client(f"bomb-{uuid4().hex}") as client:
        response = client.post("/__sandbox/scenarios", content=document, headers={"Content-Type": "application/yaml"})
    peak_after = server.memory_kb("VmHWM")

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_scenarios"
    assert server.healthy()
    assert peak_after - peak_before < BUDGET_KB, f"peak RSS grew by {(peak_after - peak_before) // MB} MB"

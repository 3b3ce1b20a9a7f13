"""Findings and coverage after a network fault, in process: 100108 (malformed_json, committed) is a
whole answer an ASGI client can receive. The faults that cut the connection, through real sockets,
are in tests/process/test_faults.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.findings import ADVICE

pytestmark = pytest.mark.anyio
API = "/v1/payments"
BODY = {"amount": 100108, "currency": "USD"}


@pytest.fixture
async def raw(app: Any, token: str, client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The tenant's client without the contract check: a malformed body is the point here."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost", headers=client.headers
    ) as made:
        yield made


async def test_a_keyless_retry_of_an_answer_that_was_not_json_is_retry_without_idempotency_key(raw, client):
    garbled = await raw.post(f"{API}/charge", json=BODY)
    retry = await raw.post(f"{API}/charge", json=BODY)

    assert garbled.status_code == 200
    assert retry.headers["Sandbox-Warning"].startswith("retry_without_idempotency_key: ")
    [finding] = (await client.get("/__sandbox/findings")).json()["findings"]
    assert finding["code"] == "retry_without_idempotency_key"
    assert finding["requests"] == [garbled.headers["Request-Id"], retry.headers["Request-Id"]]
    assert finding["advice"] == ADVICE["retry_without_idempotency_key"]


async def test_a_retry_with_its_key_after_a_fault_is_fine(raw, client):
    headers = {"Idempotency-Key": "order-1"}
    await raw.post(f"{API}/charge", json=BODY, headers=headers)
    retry = await raw.post(f"{API}/charge", json=BODY, headers=headers)

    assert retry.json()["amount"] == 100108  # the key replays the committed charge whole
    assert "Sandbox-Warning" not in retry.headers
    assert (await client.get("/__sandbox/findings")).json() == {"findings": []}


async def test_a_fault_met_moves_from_missing_to_met(raw, client):
    before = (await client.get("/__sandbox/coverage")).json()["faults"]
    await raw.post(f"{API}/charge", json=BODY)

    after = (await client.get("/__sandbox/coverage")).json()["faults"]

    assert "malformed_json" in before["missing"]
    assert after == {"met": ["malformed_json"], "missing": [f for f in before["missing"] if f != "malformed_json"]}

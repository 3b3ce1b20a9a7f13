"""Idempotency-Key under concurrency: requests with one key, in flight together and answered by any
worker process of a server sharing its store, create one charge.

Replay, mismatch, per-tenant keys, validation and expiry are tested in process (tests/http/test_idempotency.py).
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import httpx


def test_concurrent_requests_with_one_key_create_one_charge(tenant, sandbox_url):
    key = f"k-{uuid4()}"

    # 100408 is the scripted 3 s `slow` rule, so all five requests are in flight together.
    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=sandbox_url, headers=tenant.http.headers, timeout=30) as client:
            requests = [
                client.post(
                    "/v1/payments/charge",
                    json={"amount": 100408, "currency": "USD"},
                    headers={"Idempotency-Key": key},
                )
                for _ in range(5)
            ]
            return list(await asyncio.gather(*requests))

    responses = asyncio.run(fire())

    listed = tenant.charges()
    assert listed["total"] == 1
    charge_id = listed["data"][0]["id"]
    fresh = [r for r in responses if r.status_code == 200 and "Idempotent-Replayed" not in r.headers]
    assert len(fresh) == 1
    assert fresh[0].json()["id"] == charge_id
    for response in responses:
        if response is fresh[0]:
            continue
        if response.status_code == 409:
            assert response.json()["error"]["code"]
        else:
            assert response.status_code == 200
            assert response.headers["Idempotent-Replayed"] == "true"
            assert response.json()["id"] == charge_id

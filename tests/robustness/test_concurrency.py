"""Money stays straight under concurrency, against a real server over many connections at once.

Requests are fired together from one asyncio loop with httpx (a connection each), so the server
sees them interleaved the way independent clients would send them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sandbox_proc import run_async
from sandbox_server import API, SandboxProcess

SCRIPTED_DELAY = 3.0  # the default pack's `slow` rule, amount 100408
SLOW = 100408


def _client(server: SandboxProcess, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url + API,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60.0,
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=0),
    )


@pytest.mark.parametrize("refund_delay_ms", [0, 200], ids=["immediate", "delayed-by-scenario"])
def test_concurrent_partial_refunds_never_refund_more_than_the_charge(
    sandbox: SandboxProcess, refund_delay_ms: int
) -> None:
    """50 refunds of 30 on a charge of 1000: 33 fit. With a refund delay scripted for this tenant,
    every refund is accepted before any commits, so the check must happen again at commit time."""
    token = f"refunds-{uuid4().hex}"
    if refund_delay_ms:
        rule = (
            "rules:\n  - name: slow_refund\n    applies_to: refund\n    when: {amount: 1000}\n"
            f"    then: {{delay_ms: {refund_delay_ms}}}\n"
        )
        with sandbox.client(token) as control:
            loaded = control.post("/__sandbox/scenarios", content=rule, headers={"Content-Type": "application/yaml"})
            assert loaded.status_code == 200, loaded.text

    async def scenario() -> tuple[list[httpx.Response], dict[str, Any], dict[str, Any]]:
        async with _client(sandbox, token) as client:
            charge = (await client.post("/charge", json={"amount": 1000, "currency": "USD"})).json()
            refunds = await asyncio.gather(
                *[client.post("/refund", json={"charge_id": charge["id"], "amount": 30}) for _ in range(50)]
            )
            after = (await client.get(f"/charge/{charge['id']}")).json()
            return refunds, charge, after

    refunds, charge, after = run_async(scenario)

    statuses = Counter(r.status_code for r in refunds)
    accepted = statuses[200]
    assert set(statuses) <= {200, 400}, statuses
    assert accepted * 30 <= charge["amount"]
    assert accepted == 33  # every refund that fits is accepted: 33 * 30 = 990
    assert after["amount_refunded"] == accepted * 30
    assert after["refunded"] is False
    assert {r.json()["error"]["code"] for r in refunds if r.status_code == 400} == {"amount_too_large"}
    assert len({r.json()["id"] for r in refunds if r.status_code == 200}) == accepted
    if refund_delay_ms:
        assert all(r.headers.get("Sandbox-Scenario") == "slow_refund" for r in refunds if r.status_code == 200)


def test_concurrent_posts_with_one_idempotency_key_create_one_charge(sandbox: SandboxProcess) -> None:
    """20 identical POSTs with one key on the 3 s `slow` amount: one charge; the others are told
    the first is in flight (409), and a retry after it finished replays it."""
    token, key = f"idem-{uuid4().hex}", f"key-{uuid4().hex}"
    body = {"amount": SLOW, "currency": "EUR", "description": "one and only"}

    async def scenario() -> tuple[list[tuple[httpx.Response, float]], httpx.Response, dict[str, Any]]:
        async with _client(sandbox, token) as client:

            async def timed() -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = await client.post("/charge", json=body, headers={"Idempotency-Key": key})
                return response, time.monotonic() - started

            results = await asyncio.gather(*[timed() for _ in range(20)])
            retry = await client.post("/charge", json=body, headers={"Idempotency-Key": key})
            listing = (await client.get("/charges")).json()
            return results, retry, listing

    results, retry, listing = run_async(scenario)

    originals = [(r, t) for r, t in results if r.status_code == 200 and "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1, [(r.status_code, r.text) for r, _ in results]
    created, elapsed = originals[0]
    assert elapsed >= SCRIPTED_DELAY  # the one that went through waited out the scripted delay
    others = [r for r, _ in results if r is not created]
    # In flight: 409; (only if a request arrived after the first finished) a replay of it.
    assert all(r.status_code == 409 or r.json() == created.json() for r in others), [r.text for r in others]
    conflicts = [r.json()["error"] for r in others if r.status_code == 409]
    assert conflicts, "no request saw the first one in flight"
    assert {(e["code"], e["param"]) for e in conflicts} == {("idempotency_conflict", "Idempotency-Key")}
    assert {r.status_code for r in others} <= {200, 409}
    assert retry.status_code == 200
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json() == created.json()
    assert listing["total"] == 1
    assert [c["id"] for c in listing["data"]] == [created.json()["id"]]


def test_tenants_in_parallel_see_only_their_own_charges(sandbox: SandboxProcess) -> None:
    """20 tenants create 10 charges each, all at once; each lists exactly its own 10, and cannot
    read or refund another tenant's."""
    tokens = [f"tenant-{n}-{uuid4().hex}" for n in range(20)]

    async def tenant(token: str, n: int) -> tuple[set[str], dict[str, Any]]:
        async with _client(sandbox, token) as client:
            responses = await asyncio.gather(
                *[
                    client.post("/charge", json={"amount": 1000 + n, "currency": "USD", "metadata": {"t": token}})
                    for _ in range(10)
                ]
            )
            assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
            listing = (await client.get("/charges", params={"limit": 100})).json()
            return {r.json()["id"] for r in responses}, listing

    async def scenario() -> list[tuple[set[str], dict[str, Any]]]:
        return list(await asyncio.gather(*[tenant(token, n) for n, token in enumerate(tokens)]))

    results = run_async(scenario)

    all_ids: set[str] = set()
    for n, (created, listing) in enumerate(results):
        assert listing["total"] == 10
        assert {c["id"] for c in listing["data"]} == created
        assert {(c["amount"], c["metadata"]["t"]) for c in listing["data"]} == {(1000 + n, tokens[n])}
        all_ids |= created
    assert len(all_ids) == 200

    someone_elses = next(iter(results[1][0]))
    with sandbox.client(tokens[0]) as intruder:
        read = intruder.get(f"{API}/charge/{someone_elses}")
        refund = intruder.post(f"{API}/refund", json={"charge_id": someone_elses})
    assert read.status_code == 404
    assert refund.status_code == 404
    with sandbox.client(tokens[1]) as owner:
        assert owner.get(f"{API}/charge/{someone_elses}").json()["amount_refunded"] == 0


def test_a_charge_answered_200_across_a_tenant_reset_can_be_read_back(sandbox: SandboxProcess) -> None:
    token, key = f"reset-{uuid4().hex}", f"key-{uuid4().hex}"
    body = {"amount": SLOW, "currency": "USD"}

    async def scenario() -> tuple[httpx.Response, int, int]:
        async with _client(sandbox, token) as client:

            def post() -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(client.post("/charge", json=body, headers={"Idempotency-Key": key}))

            # Two identical requests: the one that arrives second is told at once that the other is
            # in flight, which tells us the reset below lands during the scripted delay.
            first, second = post(), post()
            done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
            assert [task.result().status_code for task in done] == [409]
            in_flight = second if first in done else first
            reset = await client.post(sandbox.base_url + "/__sandbox/reset")
            assert reset.status_code == 200, reset.text
            answer = await in_flight
            if answer.status_code != 200:
                return answer, 0, 0
            read_back = await client.get(f"/charge/{answer.json()['id']}")
            listed = (await client.get("/charges")).json()["total"]
            return answer, read_back.status_code, listed

    answer, read_back, listed = run_async(scenario)

    # Either the sandbox refuses the charge that straddled the reset, or the charge it confirmed exists.
    if answer.status_code == 200:
        assert (read_back, listed) == (200, 1), answer.text

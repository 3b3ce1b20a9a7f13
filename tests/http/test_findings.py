"""Findings: what the client got wrong, shown three ways — GET /__sandbox/findings, the journal
entry's "findings", and the Sandbox-Warning header of the answer that showed it.

Magic amounts of scenarios/default.yaml: 100005 generic_decline (retryable false), 100096
processing_error (500), 100429 rate_limited (429, Retry-After: 1), 100202 pending, settles after 60 s.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx
import pytest

from sandbox.findings import ADVICE

pytestmark = pytest.mark.anyio
API = "/v1/payments"


async def findings_of(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/__sandbox/findings", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["findings"]
    return found


async def journaled(client: httpx.AsyncClient, response: httpx.Response) -> list[dict[str, Any]]:
    """The findings of the journal entry of the call `response` answered."""
    entries = (await client.get("/__sandbox/requests")).json()["requests"]
    entry = next(e for e in entries if e["id"] == response.headers["Request-Id"])
    return list(entry["findings"])


def ids(*responses: httpx.Response) -> list[str]:
    return [r.headers["Request-Id"] for r in responses]


async def assert_found(client: httpx.AsyncClient, code: str, shown: httpx.Response, *involved: httpx.Response) -> None:
    """`shown` (the call that showed it) names `code` in its header and its journal entry, and
    GET /findings lists it once, with the calls involved, earliest first."""
    requests = ids(*involved, shown)
    assert shown.headers["Sandbox-Warning"] == f"{code}: {ADVICE[code]}"
    assert await journaled(client, shown) == [{"code": code, "requests": requests}]
    [finding] = await findings_of(client)
    assert finding["code"] == code
    assert finding["requests"] == requests
    assert finding["advice"] == ADVICE[code]
    assert finding["at"].endswith("Z")


async def test_retrying_a_failed_post_without_a_key_is_retry_without_idempotency_key(api, client):
    failed = await api.post_charge(100096)
    retry = await api.post_charge(100096)

    assert failed.status_code == retry.status_code == 500
    assert "Sandbox-Warning" not in failed.headers
    await assert_found(client, "retry_without_idempotency_key", retry, failed)


async def test_the_same_body_sent_another_way_is_still_a_retry(api, client):
    failed = await api.post_charge(100096, description="x")
    raw = b'{"description": "x", "currency": "USD",\n "amount": 100096}'
    retry = await client.post(f"{API}/charge", content=raw, headers={"Content-Type": "application/json"})

    await assert_found(client, "retry_without_idempotency_key", retry, failed)


async def test_one_key_with_two_bodies_is_idempotency_key_reused(api, client):
    key = f"k-{uuid4()}"
    first = await api.post_charge(1500, key=key)
    other = await api.post_charge(1600, key=key)

    api.error(other, 400, code="idempotency_error")
    await assert_found(client, "idempotency_key_reused", other, first)


async def test_retrying_before_retry_after_has_passed_is_retry_after_ignored(api, client):
    key = f"k-{uuid4()}"
    limited = await api.post_charge(100429, key=key)
    retry = await api.post_charge(100429, key=key)

    assert limited.headers["Retry-After"] == "1"
    await assert_found(client, "retry_after_ignored", retry, limited)


async def test_retrying_a_decline_marked_not_retryable_is_retried_hard_decline(api, client):
    declined = await api.post_charge(100005)
    retry = await api.post_charge(100005)

    assert declined.json()["error"]["retryable"] is False
    await assert_found(client, "retried_hard_decline", retry, declined)


async def test_a_new_key_does_not_make_a_hard_decline_worth_retrying(api, client):
    declined = await api.post_charge(100005, key=f"k-{uuid4()}")
    retry = await api.post_charge(100005, key=f"k-{uuid4()}")

    await assert_found(client, "retried_hard_decline", retry, declined)


async def test_more_than_ten_identical_gets_in_a_second_is_hammering_reported_once(api, client):
    charge_id = (await api.charge())["id"]
    calls = [await client.get(f"{API}/charge/{charge_id}") for _ in range(12)]

    assert ["Sandbox-Warning" in r.headers for r in calls] == [False] * 10 + [True, False]
    await assert_found(client, "hammering", calls[10], *calls[:10])


async def test_ten_identical_gets_and_other_paths_are_not_hammering(api, client):
    charge_id = (await api.charge())["id"]
    for _ in range(10):
        await client.get(f"{API}/charge/{charge_id}")
    for offset in range(5):
        await client.get(f"{API}/charges", params={"offset": offset})

    assert await findings_of(client) == []


async def test_a_pending_charge_never_read_after_it_settled_is_pending_never_resolved(api, client):
    pending = await api.post_charge(100202)
    await api.advance(61)

    [finding] = await findings_of(client)

    assert finding["code"] == "pending_never_resolved"
    assert finding["requests"] == ids(pending)
    assert finding["advice"] == ADVICE["pending_never_resolved"]
    assert await journaled(client, pending) == []  # judged when asked: no call showed it


async def test_a_pending_charge_not_yet_settled_is_no_finding(api, client):
    await api.post_charge(100202)
    await api.advance(59)

    assert await findings_of(client) == []


async def test_reading_a_settled_charge_again_resolves_it(api, client):
    charge_id = (await api.post_charge(100202)).json()["id"]
    assert (await api.get(charge_id))["status"] == "pending"
    await api.advance(61)

    assert (await api.list())["data"][0]["status"] == "succeeded"
    assert await findings_of(client) == []


async def test_a_well_behaved_client_gets_no_findings(api, client):
    key = f"k-{uuid4()}"
    responses = [await api.post_charge(100429, key=key)]
    await asyncio.sleep(1.1)  # Retry-After: 1 is real seconds
    responses.append(await api.post_charge(100429, key=key))
    failed_key = f"k-{uuid4()}"
    responses += [await api.post_charge(100096, key=failed_key), await api.post_charge(100096, key=failed_key)]
    responses.append(await api.post_charge(100005))  # declined: not retried
    pending = await api.post_charge(100202, key=f"k-{uuid4()}")
    charge_id = pending.json()["id"]
    responses += [pending, await client.get(f"{API}/charge/{charge_id}")]
    await api.advance(61)
    responses.append(await client.get(f"{API}/charge/{charge_id}"))
    responses.append(await api.refund(charge_id, key=f"k-{uuid4()}"))

    assert [r.status_code for r in responses] == [429, 429, 500, 500, 400, 200, 200, 200, 200]
    assert [r.headers.get("Sandbox-Warning") for r in responses] == [None] * len(responses)
    assert await findings_of(client) == []
    entries = (await client.get("/__sandbox/requests")).json()["requests"]
    assert [e["findings"] for e in entries] == [[]] * len(responses)


async def test_findings_are_listed_oldest_first_and_filtered_by_code(api, client):
    await api.post_charge(100005)
    await api.post_charge(100005)
    await api.post_charge(100202)
    await api.advance(61)
    await api.post_charge(100096)
    await api.post_charge(100096)

    codes = [f["code"] for f in await findings_of(client)]

    assert codes == ["retried_hard_decline", "pending_never_resolved", "retry_without_idempotency_key"]
    assert [f["code"] for f in await findings_of(client, code="pending_never_resolved")] == codes[1:2]
    assert await findings_of(client, code="hammering") == []


async def test_an_unknown_code_is_refused_in_the_envelope(api, client):
    response = await client.get("/__sandbox/findings", params={"code": "nope"})

    api.error(response, 400, code="parameter_invalid", param="code")


async def test_findings_are_the_tenants_own_and_every_tenants_without_a_token(api, client, other_api, make_client):
    await api.post_charge(100005)
    retry = await api.post_charge(100005)

    assert await findings_of(other_api.client) == []
    everyone = await findings_of(make_client())
    assert ids(retry)[0] in [f["requests"][-1] for f in everyone]
    [mine] = [f for f in everyone if f["requests"][-1] == ids(retry)[0]]
    assert mine["tenant"] == (await findings_of(client))[0]["tenant"]


async def test_a_reset_forgets_the_calls_a_retry_would_repeat(api, client):
    await api.post_charge(100096)
    assert (await client.post("/__sandbox/reset")).status_code == 200

    again = await api.post_charge(100096)

    assert "Sandbox-Warning" not in again.headers
    assert await findings_of(client) == []

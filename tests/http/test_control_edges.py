"""Edges of the control API, journal and scenario naming, through the in-process app."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio
API = "/v1/payments"


async def test_dashboard_root_without_slash_redirects_to_it(client):
    response = await client.get("/__sandbox")
    assert response.status_code == 307
    assert response.headers["location"].endswith("/__sandbox/")


async def test_seeding_twice_with_one_seed_gives_the_same_charges_under_new_ids(client, api):
    first = (await client.post("/__sandbox/seed", json={"count": 5, "seed": 3})).json()["ids"]
    second = (await client.post("/__sandbox/seed", json={"count": 5, "seed": 3})).json()["ids"]

    assert len(set(first) | set(second)) == 10
    assert await api.total() == 10
    shape = [{k: (await api.get(i))[k] for k in ("amount", "currency", "status")} for i in first]
    assert shape == [{k: (await api.get(i))[k] for k in ("amount", "currency", "status")} for i in second]


async def test_headers_over_16_kib_are_refused_with_431_in_the_envelope(client, api):
    response = await client.post(
        f"{API}/charge", json={"amount": 1500, "currency": "USD"}, headers={"X-Pad": "p" * 17_000}
    )

    api.error(response, 431, code="headers_too_large")
    assert response.headers["request-id"].startswith("req_")
    assert await api.total() == 0


async def test_the_journal_shows_bodies_parsed_and_keeps_at_most_255_characters_of_a_key(client, api):
    await client.post(f"{API}/charge", json={"amount": 1500, "currency": "USD"}, headers={"Idempotency-Key": "k" * 300})
    charge = await api.charge(description="journaled")
    entries = (await client.get("/__sandbox/requests")).json()["requests"]

    assert [e["status"] for e in entries] == [400, 200]
    assert len(entries[0]["idempotency_key"]) == 255
    assert entries[1]["request_body"] == {"amount": 1500, "currency": "USD", "description": "journaled"}
    assert entries[1]["response_body"] == charge
    assert entries[1]["started_at"].endswith("Z")
    assert entries[1]["duration_ms"] >= 0


async def test_a_body_the_journal_cannot_parse_is_shown_as_sent(client):
    await client.post(f"{API}/charge", content=b'{"amount": NaN}', headers={"Content-Type": "application/json"})
    entries = (await client.get("/__sandbox/requests")).json()["requests"]

    assert entries[0]["request_body"] == '{"amount": NaN}'
    assert entries[0]["response_body"]["error"]["code"] == "invalid_json"


async def test_a_charge_naming_a_refund_rule_succeeds_and_its_refunds_meet_that_rule(client, api):
    charge = await api.charge(metadata={"sandbox_scenario": "refund_failed"})
    refund = await api.refund(charge["id"])

    assert charge["status"] == "succeeded"
    api.error(refund, 400, code="refund_failed")


async def test_a_refund_naming_a_charge_rule_is_an_ordinary_refund(client, api):
    charge = await api.charge()
    refund = await api.refund(charge["id"], metadata={"sandbox_scenario": "generic_decline"})

    assert refund.status_code == 200, refund.text
    assert (await api.get(charge["id"]))["refunded"] is True


async def test_a_charge_naming_a_refund_rule_still_meets_the_decline_of_its_magic_amount(client, api):
    body = {"amount": 100005, "currency": "USD", "metadata": {"sandbox_scenario": "refund_failed"}}
    response = await client.post(f"{API}/charge", json=body)

    api.error(response, 400, code="card_declined")


async def test_the_journal_shows_a_body_with_an_integer_beyond_64_bits(client, api):
    response = await client.post(f"{API}/charge", json={"amount": 2**70, "currency": "USD"})
    entries = (await client.get("/__sandbox/requests")).json()["requests"]

    api.error(response, 400, param="amount")
    assert entries[0]["request_body"] == {"amount": 2**70, "currency": "USD"}

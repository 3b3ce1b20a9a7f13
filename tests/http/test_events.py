"""Events: every stored change of a charge or refund makes one, listed oldest first at
GET /__sandbox/events (for clients that poll), shaped {id, type, created_at, data: {object}, livemode}.
Runs against every store."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def _events(client, **params) -> dict:
    response = await client.get("/__sandbox/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _types(client, **params) -> list[str]:
    return [event["type"] for event in (await _events(client, **params))["data"]]


async def test_a_charge_makes_one_event_showing_it_as_the_api_did(client, api):
    charge = await api.charge(description="evented")

    [event] = (await _events(client))["data"]

    assert event["type"] == "charge.succeeded"
    assert event["id"].startswith("evt_")
    assert event["data"] == {"object": charge}
    assert event["livemode"] is False
    assert event["created_at"] == charge["created_at"]


async def test_declined_and_pending_charges_make_their_events_and_refused_ones_none(client, api):
    await api.post_charge(100005)  # declined: stored failed
    await api.post_charge(100202)  # pending
    await api.post_charge(100096)  # processing_error: nothing stored
    await api.post_charge(100429)  # rate limited: nothing stored
    await api.post_charge(-5)  # invalid: nothing stored

    assert await _types(client) == ["charge.failed", "charge.pending"]


async def test_settling_makes_the_event_of_the_charge_as_it_settled_at_its_settle_time(client, api):
    pending = (await api.post_charge(100203)).json()
    await client.post("/__sandbox/clock/advance", json={"seconds": 61})

    *_, settled = (await _events(client))["data"]
    await client.post("/__sandbox/clock/advance", json={"seconds": 61})  # nothing more is due

    assert settled["type"] == "charge.failed"
    assert settled["data"]["object"]["id"] == pending["id"]
    assert settled["data"]["object"]["status"] == "failed"
    assert settled["data"]["object"]["failure_code"] == "insufficient_funds"
    assert settled["created_at"] > pending["created_at"]
    assert await _types(client) == ["charge.pending", "charge.failed"]


async def test_refunds_make_refund_events_and_the_last_one_charge_refunded(client, api):
    charge = await api.charge(amount=1000)
    first = (await api.refund(charge["id"], amount=400)).json()
    await api.refund(charge["id"], amount=700)  # too large: refused by validation, no event
    second = (await api.refund(charge["id"])).json()

    events = (await _events(client))["data"]

    assert [e["type"] for e in events] == [
        "charge.succeeded",
        "refund.succeeded",
        "refund.succeeded",
        "charge.refunded",
    ]
    assert events[1]["data"]["object"] == first
    assert events[2]["data"]["object"] == second
    refunded = events[3]["data"]["object"]
    assert refunded == {**charge, "amount_refunded": 1000, "refunded": True}
    assert refunded == await api.get(charge["id"])


async def test_a_refund_a_scenario_refuses_makes_refund_failed(client, api):
    charge = await api.charge(amount=100062)
    refused = await api.refund(charge["id"], amount=10)

    event = (await _events(client, type="refund.*"))["data"][0]

    assert refused.status_code == 400
    assert event["type"] == "refund.failed"
    assert event["data"]["object"]["charge_id"] == charge["id"]
    assert event["data"]["object"]["amount"] == 10
    assert event["data"]["object"]["status"] == "failed"
    assert event["data"]["object"]["failure_code"] == "refund_failed"


async def test_a_poller_pages_with_after_limit_and_type(client, api):
    for amount in (1001, 1002, 1003, 100005, 1004):
        await api.post_charge(amount)

    first = await _events(client, limit=2)
    rest = await _events(client, after=first["data"][-1]["id"], limit=100)
    failed = await _types(client, type="charge.failed")

    assert first["has_more"] is True
    assert rest["has_more"] is False
    amounts = [e["data"]["object"]["amount"] for e in first["data"] + rest["data"]]
    assert amounts == [1001, 1002, 1003, 100005, 1004]
    assert failed == ["charge.failed"]


async def test_an_idempotent_replay_makes_no_second_event(client, api):
    await api.post_charge(1500, key="k-1")
    await api.post_charge(1500, key="k-1")

    assert await _types(client) == ["charge.succeeded"]


async def test_events_are_the_tenants_own_and_a_reset_drops_them(client, make_client, api):
    await api.charge()
    other = make_client("someone-else")

    assert (await _events(other))["data"] == []
    await client.post("/__sandbox/reset")
    assert (await _events(client))["data"] == []


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"type": "charge.made"}, "type"),
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"after": "evt_no"}, "after"),
    ],
)
async def test_bad_parameters_are_a_400_naming_the_parameter(client, api, params, param):
    response = await client.get("/__sandbox/events", params=params)

    api.error(response, 400, code="parameter_invalid", param=param)


async def test_without_a_tenant_it_is_refused(make_client):
    response = await make_client(None).get("/__sandbox/events")

    assert response.status_code == 401

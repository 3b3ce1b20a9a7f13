"""Default pack, declines: 100005, 100051 and 100054 answer 400 and store a failed charge.

Every other amount succeeds, in any currency, with no scenario header.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

DECLINES = {
    100005: "generic_decline",
    100051: "insufficient_funds",
    100054: "expired_card",
}


async def test_generic_decline_is_a_non_retryable_card_declined(api):
    response = await api.post_charge(100005)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "card_declined"
    assert error["decline_code"] == "generic_decline"
    assert error["retryable"] is False


async def test_insufficient_funds_is_a_retryable_card_declined(api):
    response = await api.post_charge(100051)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "card_declined"
    assert error["decline_code"] == "insufficient_funds"
    assert error["retryable"] is True


async def test_expired_card_answers_expired_card(api):
    response = await api.post_charge(100054)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "expired_card"


@pytest.mark.parametrize(("amount", "rule"), DECLINES.items())
async def test_decline_carries_the_scenario_header(api, amount, rule):
    response = await api.post_charge(amount)

    assert response.headers["Sandbox-Scenario"] == rule


@pytest.mark.parametrize("amount", DECLINES)
async def test_decline_envelope_names_the_stored_failed_charge(api, amount):
    response = await api.post_charge(amount, "EUR", description="declined on purpose")

    charge_id = response.json()["error"]["charge"]
    assert charge_id.startswith("ch_")
    stored = await api.get(charge_id)
    assert stored["status"] == "failed"
    assert stored["amount"] == amount
    assert stored["currency"] == "EUR"
    assert stored["description"] == "declined on purpose"


@pytest.mark.parametrize("amount", DECLINES)
async def test_declined_charge_is_listed_under_failed_only(api, amount):
    charge_id = (await api.post_charge(amount)).json()["error"]["charge"]

    assert await api.ids("failed") == [charge_id]
    assert await api.ids("succeeded") == []
    assert await api.ids("pending") == []
    assert await api.total() == 1


@pytest.mark.parametrize("amount", DECLINES)
async def test_declined_charge_cannot_be_refunded(api, amount):
    charge_id = (await api.post_charge(amount)).json()["error"]["charge"]

    response = await api.refund(charge_id)

    error = api.error(response, 400, param="charge_id")
    assert error["code"] != "refund_failed"  # refused by the money rules, not a scenario
    stored = await api.get(charge_id)
    assert stored["status"] == "failed"
    assert stored["amount_refunded"] == 0


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "GBP"])
async def test_magic_amount_declines_in_any_currency(api, currency):
    response = await api.post_charge(100005, currency)

    assert response.status_code == 400
    assert response.json()["error"]["decline_code"] == "generic_decline"


@pytest.mark.parametrize("amount", [1, 1500, 100004, 100006, 100050, 100052, 100062, 99999999])
async def test_any_other_amount_succeeds_without_scenario_header(api, amount):
    response = await api.post_charge(amount)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["amount"] == amount
    assert "Sandbox-Scenario" not in response.headers
    assert await api.ids("succeeded") == [body["id"]]

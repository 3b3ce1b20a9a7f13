"""`metadata.sandbox_scenario` naming a rule gives a charge or refund that rule's outcome, whatever its amount."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


def named(rule: str) -> dict[str, dict[str, str]]:
    return {"metadata": {"sandbox_scenario": rule}}


async def test_named_decline_applies_to_an_ordinary_amount(api):
    response = await api.post_charge(1500, **named("insufficient_funds"))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "card_declined"
    assert error["decline_code"] == "insufficient_funds"
    assert error["retryable"] is True
    assert response.headers["Sandbox-Scenario"] == "insufficient_funds"
    stored = await api.get(error["charge"])
    assert stored["status"] == "failed"
    assert stored["amount"] == 1500


async def test_named_timeout_commits_an_ordinary_amount(api):
    response = await api.post_charge(1500, **named("timeout_after_commit"))

    assert response.status_code == 504
    assert [charge["amount"] for charge in (await api.list(status="succeeded"))["data"]] == [1500]


async def test_named_pending_rule_settles_by_the_clock(api):
    response = await api.post_charge(1500, **named("pending_then_succeeded"))
    assert response.json()["status"] == "pending"

    await api.advance(61)

    assert (await api.get(response.json()["id"]))["status"] == "succeeded"


async def test_named_rule_wins_over_the_magic_amount(api):
    response = await api.post_charge(100005, **named("expired_card"))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "expired_card"
    assert response.headers["Sandbox-Scenario"] == "expired_card"


async def test_named_refund_rule_fails_the_refund_of_an_ordinary_charge(api):
    charge_id = (await api.charge())["id"]

    response = await api.refund(charge_id, **named("refund_failed"))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "refund_failed"
    assert (await api.get(charge_id))["amount_refunded"] == 0


async def test_unknown_rule_name_is_rejected_and_stores_nothing(api):
    response = await api.post_charge(1500, **named("no_such_rule"))

    assert response.status_code == 400
    assert "no_such_rule" in response.json()["error"]["message"]
    assert await api.total() == 0

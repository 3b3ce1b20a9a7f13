"""Delivery faults on purpose (a rule's `then.webhooks`): duplicates, a delay, out-of-order events
and forged signatures, so a team can prove its handler copes."""

from __future__ import annotations

import time

from helpers import attempts_logged, charge, refund

from sandbox.pytest_plugin import PaymentsSandbox
from sandbox.receiver import Receiver


def rule(name: str, amount: int, webhooks: str, then: str = "", applies_to: str = "charge") -> str:
    return (
        f"rules:\n  - name: {name}\n    applies_to: {applies_to}\n    when: {{amount: {amount}}}\n"
        f"    then: {{{then}{', ' if then else ''}webhooks: {webhooks}}}\n"
    )


def test_duplicates_carry_one_event_id(payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver) -> None:
    payments_sandbox.load_scenarios(rule("thrice", 3003, "{duplicate: 3}"))
    charge(payments_sandbox, 3003)
    payments_webhooks.wait_for("charge.succeeded", count=3)
    time.sleep(0.5)
    assert len(payments_webhooks.events) == 3
    assert len({e["id"] for e in payments_webhooks.events}) == 1


def test_a_delay_follows_the_tenants_clock(payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver) -> None:
    payments_sandbox.load_scenarios(rule("late", 3004, "{delay_seconds: 30}"))
    charge(payments_sandbox, 3004)
    time.sleep(1.5)
    assert payments_webhooks.deliveries == []
    payments_sandbox.advance_clock(30)
    payments_webhooks.wait_for("charge.succeeded")


def test_a_pending_charges_event_comes_after_its_settlement(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    payments_sandbox.load_scenarios(
        rule("backwards", 3005, "{out_of_order: true}", "charge: pending, settle: {after_seconds: 60, to: succeeded}")
    )
    made = charge(payments_sandbox, 3005)
    time.sleep(1)
    assert payments_webhooks.deliveries == []  # held back until the charge settles
    payments_sandbox.advance_clock(60)
    payments_webhooks.wait_for("charge.pending")
    events = payments_webhooks.events
    assert [e["type"] for e in events] == ["charge.succeeded", "charge.pending"]
    assert {e["data"]["object"]["id"] for e in events} == {made["id"]}
    assert events[0]["created_at"] > events[1]["created_at"]  # order by created_at to see the truth


def test_a_refunds_events_come_newest_first(payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver) -> None:
    payments_sandbox.load_scenarios(rule("backwards_refund", 3006, "{out_of_order: true}", applies_to="refund"))
    made = charge(payments_sandbox, 3006)
    payments_webhooks.wait_for("charge.succeeded")
    refund(payments_sandbox, made["id"])
    payments_webhooks.wait_for("refund.succeeded")
    assert [e["type"] for e in payments_webhooks.events] == ["charge.succeeded", "charge.refunded", "refund.succeeded"]


def test_a_forged_signature_fails_verification(payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver) -> None:
    payments_sandbox.load_scenarios(rule("forged", 3007, "{bad_signature: true}"))
    charge(payments_sandbox, 3007)
    deadline = time.monotonic() + 5
    while not payments_webhooks.forged:
        assert time.monotonic() < deadline, payments_webhooks.deliveries
        time.sleep(0.05)
    assert payments_webhooks.events == []
    assert payments_webhooks.forged[0].status == 400
    attempts = attempts_logged(payments_sandbox, payments_webhooks.webhook_id or "", 1)
    assert attempts[-1]["signature"] == "forged"
    assert attempts[-1]["status"] == 400
    charge(payments_sandbox, 1000)  # an ordinary charge is signed with the endpoint's secret
    payments_webhooks.wait_for("charge.succeeded")

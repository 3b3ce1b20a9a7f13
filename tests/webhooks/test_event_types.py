"""Every event type reaches a registered endpoint, signed, with the object as the API shows it."""

from __future__ import annotations

from helpers import charge, refund

from sandbox.pytest_plugin import PaymentsSandbox
from sandbox.receiver import Receiver


def test_a_charge_is_delivered_as_the_api_showed_it(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    made = charge(payments_sandbox, 1234)
    event = payments_webhooks.wait_for("charge.succeeded")
    assert event["data"]["object"] == made
    assert event["id"].startswith("evt_")
    assert event["livemode"] is False
    assert event == payments_sandbox.events()[0]
    delivery = payments_webhooks.deliveries[0]
    assert delivery.verified
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["sandbox-event-id"] == event["id"]
    assert delivery.attempt == 1


def test_a_decline_is_delivered_as_charge_failed(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    charge(payments_sandbox, 100005)
    event = payments_webhooks.wait_for("charge.failed")
    assert event["data"]["object"]["failure_code"] == "generic_decline"


def test_a_pending_charge_settles_and_tells_without_anyone_asking(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    made = charge(payments_sandbox, 100202)  # pending, settles as succeeded 60 s later
    assert payments_webhooks.wait_for("charge.pending")["data"]["object"]["id"] == made["id"]
    payments_sandbox.advance_clock(61)
    settled = payments_webhooks.wait_for("charge.succeeded")
    assert settled["data"]["object"]["id"] == made["id"]
    assert settled["data"]["object"]["status"] == "succeeded"


def test_a_settle_job_fires_on_real_time_too(payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver) -> None:
    payments_sandbox.load_scenarios(
        "rules:\n"
        "  - name: quick_pending\n"
        "    applies_to: charge\n"
        "    when: {amount: 4242}\n"
        "    then: {charge: pending, settle: {after_seconds: 1, to: failed, decline_code: do_not_honor}}\n"
    )
    made = charge(payments_sandbox, 4242)
    failed = payments_webhooks.wait_for("charge.failed", timeout=10)  # nobody reads the tenant meanwhile
    assert failed["data"]["object"]["id"] == made["id"]
    assert failed["data"]["object"]["failure_code"] == "do_not_honor"


def test_refunds_tell_of_the_refund_and_of_the_charge_refunded_in_full(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    made = charge(payments_sandbox, 5000)
    first = refund(payments_sandbox, made["id"], amount=2000)
    refund(payments_sandbox, made["id"])
    refunded = payments_webhooks.wait_for("charge.refunded")
    assert refunded["data"]["object"]["refunded"] is True
    succeeded = payments_webhooks.wait_for("refund.succeeded", count=2)
    assert succeeded["data"]["object"] == first
    assert [e["type"] for e in payments_webhooks.events] == [
        "charge.succeeded", "refund.succeeded", "refund.succeeded", "charge.refunded",
    ]  # fmt: skip


def test_a_refused_refund_is_delivered_as_refund_failed(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    made = charge(payments_sandbox, 100062)
    refund(payments_sandbox, made["id"])
    failed = payments_webhooks.wait_for("refund.failed")
    assert failed["data"]["object"]["charge_id"] == made["id"]
    assert failed["data"]["object"]["failure_code"] == "refund_failed"


def test_an_endpoint_gets_only_the_events_it_asked_for(payments_sandbox: PaymentsSandbox) -> None:
    with payments_sandbox.webhook_receiver(events=["refund.*"]) as refunds_only:
        made = charge(payments_sandbox, 700)
        refund(payments_sandbox, made["id"])
        refunds_only.wait_for("refund.succeeded")
        charge(payments_sandbox, 800)
        payments_sandbox.redeliver(payments_sandbox.events("refund.succeeded")[0]["id"])
        refunds_only.wait_for("refund.succeeded", count=2)
        assert {e["type"] for e in refunds_only.events} == {"refund.succeeded"}

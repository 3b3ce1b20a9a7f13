"""A client that learns of a pending charge's settlement by webhook (its endpoint answered 2xx) has
resolved it: no `pending_never_resolved`; one whose endpoint refused the settlement has not."""

from __future__ import annotations

from helpers import attempts_logged, charge

from sandbox.pytest_plugin import PaymentsSandbox
from sandbox.receiver import Receiver


def settle_a_pending_charge(tenant: PaymentsSandbox, receiver: Receiver, status: int) -> None:
    """A pending charge the client never reads again, settled; each delivery answered `status`."""
    if status != 200:
        receiver.fail_next(10, status=status)
    charge(tenant, 100202)  # pending; settles as succeeded 60 s later
    receiver.wait_for("charge.pending", status=status)
    tenant.advance_clock(61)
    receiver.wait_for("charge.succeeded", status=status)
    attempts_logged(tenant, receiver.webhook_id or "", 2)


def test_a_settlement_heard_by_webhook_is_resolved(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    settle_a_pending_charge(payments_sandbox, payments_webhooks, 200)
    assert payments_sandbox.findings("pending_never_resolved") == []


def test_a_settlement_the_endpoint_refused_is_not(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    settle_a_pending_charge(payments_sandbox, payments_webhooks, 500)
    assert [f["code"] for f in payments_sandbox.findings("pending_never_resolved")] == ["pending_never_resolved"]

"""A delivery that fails is tried again on the documented schedule, which follows the tenant's
clock; every attempt is listed with its status, duration and answer."""

from __future__ import annotations

import socket
import time

from helpers import attempts_logged as logged
from helpers import charge

from sandbox.pytest_plugin import PaymentsSandbox
from sandbox.receiver import Receiver
from sandbox.webhooks import RETRY_AFTER


def test_failed_deliveries_are_retried_when_the_clock_reaches_them(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    payments_webhooks.fail_next(2)
    made = charge(payments_sandbox)
    time.sleep(1.5)
    assert payments_webhooks.events == []  # the first attempt failed; the next is 10 s away
    payments_sandbox.advance_clock(RETRY_AFTER[0])
    time.sleep(1.5)
    assert payments_webhooks.events == []  # the second failed too; the third is a minute away
    payments_sandbox.advance_clock(RETRY_AFTER[1])
    event = payments_webhooks.wait_for("charge.succeeded")
    assert event["data"]["object"]["id"] == made["id"]
    assert [d.attempt for d in payments_webhooks.deliveries] == [1, 2, 3]
    assert [d.status for d in payments_webhooks.deliveries] == [500, 500, 200]
    attempts = logged(payments_sandbox, payments_webhooks.webhook_id or "", 3)
    assert [a["attempt"] for a in attempts] == [3, 2, 1]  # newest first
    assert [a["status"] for a in attempts] == [200, 500, 500]
    assert attempts[0]["next_attempt_at"] is None
    assert attempts[1]["next_attempt_at"] is not None
    assert attempts[0]["response_body"] == '{"received": true}'
    assert len({a["id"] for a in attempts}) == 1  # one delivery, three attempts
    assert all(a["duration_ms"] >= 0 for a in attempts)


def test_a_dead_endpoint_is_tried_again_and_costs_the_api_nothing(payments_sandbox: PaymentsSandbox) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    hook = payments_sandbox.add_webhook(f"http://127.0.0.1:{port}/gone")
    made = charge(payments_sandbox)
    assert made["status"] == "succeeded"
    deadline = time.monotonic() + 5
    while not (attempts := payments_sandbox.deliveries(hook["id"])):
        assert time.monotonic() < deadline, "no attempt was made"
        time.sleep(0.1)
    assert attempts[0]["status"] is None
    assert "ConnectError" in attempts[0]["error"]
    assert attempts[0]["next_attempt_at"] is not None
    payments_sandbox.advance_clock(sum(RETRY_AFTER) + 1)  # every retry comes due at once
    deadline = time.monotonic() + 10
    while len(attempts := payments_sandbox.deliveries(hook["id"])) < len(RETRY_AFTER) + 1:
        assert time.monotonic() < deadline, attempts
        payments_sandbox.advance_clock(sum(RETRY_AFTER) + 1)
        time.sleep(0.2)
    assert attempts[0]["attempt"] == len(RETRY_AFTER) + 1
    assert attempts[0]["next_attempt_at"] is None  # given up after the last


def test_a_redelivery_sends_the_event_again(payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver) -> None:
    charge(payments_sandbox)
    first = payments_webhooks.wait_for("charge.succeeded")
    ids = payments_sandbox.redeliver(first["id"], payments_webhooks.webhook_id)
    assert len(ids) == 1
    payments_webhooks.wait_for("charge.succeeded", count=2)
    assert payments_webhooks.events == [first, first]


def test_a_deleted_endpoint_gets_nothing_more(payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver) -> None:
    charge(payments_sandbox)
    payments_webhooks.wait_for("charge.succeeded")
    payments_sandbox.delete_webhook(payments_webhooks.webhook_id or "")
    assert payments_sandbox.webhooks() == []
    charge(payments_sandbox, 2000)
    time.sleep(1.5)
    assert len(payments_webhooks.deliveries) == 1

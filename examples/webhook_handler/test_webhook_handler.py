"""The handler's tests: a real payments-sandbox (the `payments_sandbox` fixture) sends its webhooks
to the handler served by uvicorn (conftest.py), well and, by scenario rules, badly; each test checks
what the handler's table ends up holding."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from handler_server import WAIT, RunningHandler

from sandbox.pytest_plugin import PaymentsSandbox


@pytest.fixture
def api(payments_sandbox: PaymentsSandbox) -> Iterator[httpx.Client]:
    """The API as the app calls it; at the end, the sandbox must have found nothing wrong with the
    app (a pending charge heard of by webhook counts as resolved)."""
    yield payments_sandbox.client()
    payments_sandbox.assert_no_findings()


def make_charge(api: httpx.Client, amount: int) -> dict[str, Any]:
    response = api.post("/charge", json={"amount": amount, "currency": "USD"})
    assert response.status_code == 200, response.text
    charge: dict[str, Any] = response.json()
    return charge


def wait_for_attempts(
    sandbox: PaymentsSandbox, hook_id: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The endpoint's delivery attempts (the sandbox's log, newest first) once `done` says so."""
    deadline = time.monotonic() + WAIT
    while not done(attempts := sandbox.deliveries(hook_id)):
        assert time.monotonic() < deadline, f"the sandbox's delivery attempts so far: {attempts}"
        time.sleep(0.05)
    return attempts


def rule(name: str, amount: int, then: str) -> str:
    """A scenario rule (YAML) for charges of `amount`."""
    return f"rules:\n  - name: {name}\n    applies_to: charge\n    when: {{amount: {amount}}}\n    then: {then}\n"


def test_a_charge_ends_up_succeeded(api: httpx.Client, handler: RunningHandler) -> None:
    charge = make_charge(api, 1000)
    record = handler.wait_for_status(charge["id"], "succeeded")
    assert len(record["events"]) == 1


def test_a_pending_charge_is_succeeded_once_it_settles(
    api: httpx.Client, handler: RunningHandler, payments_sandbox: PaymentsSandbox
) -> None:
    charge = make_charge(api, 100202)  # pending; settles as succeeded 60 s later
    assert charge["status"] == "pending"
    handler.wait_for_status(charge["id"], "pending")
    payments_sandbox.advance_clock(61)
    record = handler.wait_for_status(charge["id"], "succeeded")
    assert len(record["events"]) == 2


def test_a_duplicated_event_is_applied_once(
    api: httpx.Client, handler: RunningHandler, payments_sandbox: PaymentsSandbox
) -> None:
    payments_sandbox.load_scenarios(rule("thrice", 4003, "{webhooks: {duplicate: 3}}"))
    charge = make_charge(api, 4003)
    attempts = wait_for_attempts(payments_sandbox, handler.hook_id, lambda a: len(a) == 3)
    assert [a["status"] for a in attempts] == [200, 200, 200]  # a duplicate is acknowledged too
    assert len({a["event"] for a in attempts}) == 1
    record = handler.charge(charge["id"])
    assert record is not None
    assert record["status"] == "succeeded"
    assert record["events"] == [attempts[0]["event"]]
    assert handler.outcomes() == {"applied": 1, "duplicate": 2}


def test_a_late_pending_event_does_not_move_a_charge_back(
    api: httpx.Client, handler: RunningHandler, payments_sandbox: PaymentsSandbox
) -> None:
    settles_backwards = "{charge: pending, settle: {after_seconds: 60, to: succeeded}, webhooks: {out_of_order: true}}"
    payments_sandbox.load_scenarios(rule("backwards", 4005, settles_backwards))
    charge = make_charge(api, 4005)
    assert charge["status"] == "pending"
    payments_sandbox.advance_clock(61)
    attempts = wait_for_attempts(payments_sandbox, handler.hook_id, lambda a: len(a) == 2)
    assert [(a["type"], a["status"]) for a in reversed(attempts)] == [
        ("charge.succeeded", 200),
        ("charge.pending", 200),  # arrived last, told of an older state
    ]
    record = handler.wait_for_status(charge["id"], "succeeded")
    assert len(record["events"]) == 1
    assert handler.outcomes() == {"applied": 1, "stale": 1}


def test_a_forged_signature_is_rejected_and_nothing_applied(
    api: httpx.Client, handler: RunningHandler, payments_sandbox: PaymentsSandbox
) -> None:
    payments_sandbox.load_scenarios(rule("forged", 4007, "{webhooks: {bad_signature: true}}"))
    charge = make_charge(api, 4007)
    [attempt] = wait_for_attempts(payments_sandbox, handler.hook_id, bool)
    assert (attempt["signature"], attempt["status"]) == ("forged", 400)
    assert handler.charge(charge["id"]) is None
    assert handler.outcomes() == {"rejected": 1}


def test_a_failed_answer_is_retried_and_then_applied(
    api: httpx.Client, start_handler: Callable[..., RunningHandler], payments_sandbox: PaymentsSandbox
) -> None:
    handler = start_handler(fail_first=1)
    charge = make_charge(api, 1000)
    [failed] = wait_for_attempts(payments_sandbox, handler.hook_id, bool)
    assert (failed["attempt"], failed["status"]) == (1, 503)
    assert failed["next_attempt_at"] is not None
    assert handler.charge(charge["id"]) is None
    payments_sandbox.advance_clock(10)  # the first retry is 10 s away on the tenant's clock
    record = handler.wait_for_status(charge["id"], "succeeded")
    assert record["events"] == [failed["event"]]  # the failed attempt did not mark it as seen
    attempts = payments_sandbox.deliveries(handler.hook_id)
    assert [(a["attempt"], a["status"]) for a in attempts] == [(2, 200), (1, 503)]
    assert handler.outcomes() == {"failed": 1, "applied": 1}


def test_a_replayed_or_tampered_delivery_is_refused(handler: RunningHandler) -> None:
    # Sent straight to the handler, signed with its real secret: only the timestamp or body is wrong.
    event = {
        "id": "evt_replayed",
        "type": "charge.succeeded",
        "created_at": "2026-01-01T00:00:00Z",
        "data": {"object": {"id": "ch_replayed", "status": "succeeded", "amount_refunded": 0, "refunded": False}},
        "livemode": False,
    }
    body = json.dumps(event).encode()

    def post(stamp: int, signed: bytes, sent: bytes) -> httpx.Response:
        digest = hmac.new(handler.secret.encode(), f"{stamp}.".encode() + signed, hashlib.sha256).hexdigest()
        headers = {"Sandbox-Signature": f"t={stamp},v1={digest}", "Content-Type": "application/json"}
        return handler.client.post("/webhooks", content=sent, headers=headers)

    now = int(time.time())
    assert post(now - 301, body, body).status_code == 400  # signed over five minutes ago
    assert post(now, body, body.replace(b"succeeded", b"failed")).status_code == 400
    assert handler.client.post("/webhooks", content=body).status_code == 400  # unsigned
    assert handler.charge("ch_replayed") is None
    answer = post(now, body, body)
    assert (answer.status_code, answer.json()["outcome"]) == (200, "applied")
    assert handler.outcomes() == {"rejected": 3, "applied": 1}

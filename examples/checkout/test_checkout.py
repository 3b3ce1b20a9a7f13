"""The example app's tests: each one talks to a real payments-sandbox through the fixture."""

import httpx
import pytest
from checkout import Declined, PaymentError, charge_status, checkout, refund


@pytest.fixture
def api(payments_sandbox):
    # The app only needs a base URL and a bearer token: exactly what production would give it.
    with httpx.Client(base_url=payments_sandbox.base_url, headers=payments_sandbox.headers) as client:
        yield client
    # The app is a well-behaved client: nothing it did is a finding (a keyless retry, a retried
    # hard decline, Retry-After ignored, a pending charge never read again once settled).
    payments_sandbox.assert_no_findings()


def test_successful_charge(api):
    charge = checkout(api, "A-1", 1500, "USD")
    assert charge["status"] == "succeeded"
    assert charge["amount"] == 1500


def test_decline_is_reported_with_its_reason(api, payments_sandbox):
    with pytest.raises(Declined) as declined:
        checkout(api, "A-2", 100051, "USD")  # insufficient_funds: a retryable decline, not retried
    assert declined.value.decline_code == "insufficient_funds"
    assert len(payments_sandbox.requests(path="/v1/payments/charge")) == 1


def test_retry_after_503_charges_once(api, payments_sandbox):
    charge = checkout(api, "A-3", 100503, "EUR")  # 503 on the first attempt only
    assert charge["status"] == "succeeded"
    assert [e["status"] for e in payments_sandbox.requests()] == [503, 200]
    assert api.get("/charges").json()["total"] == 1


def test_timeout_after_commit_is_not_charged_twice(api, payments_sandbox):
    # The processor commits the charge but the gateway answers 504; the retry with the same
    # Idempotency-Key gets the committed charge back instead of charging again.
    charge = checkout(api, "A-4", 100504, "USD")
    assert charge["status"] == "succeeded"
    assert [e["status"] for e in payments_sandbox.requests()] == [504, 200]
    assert api.get("/charges").json()["total"] == 1


def test_pending_charge_settles_when_the_clock_moves(api, payments_sandbox):
    charge = checkout(api, "A-5", 100202, "GBP")
    assert charge["status"] == "pending"
    payments_sandbox.advance_clock(60)
    assert charge_status(api, charge["id"]) == "succeeded"


def test_partial_refund(api):
    charge = checkout(api, "A-6", 5000, "USD")
    refund(api, charge["id"], 1200)
    after = api.get(f"/charge/{charge['id']}").json()
    assert (after["amount_refunded"], after["refunded"]) == (1200, False)
    with pytest.raises(PaymentError) as too_much:
        refund(api, charge["id"], 4000)
    assert too_much.value.code == "amount_too_large"

"""A small client of the Payments API, the kind of code you point at the sandbox in tests.

`checkout()` charges an order once, however many times the network makes it retry: every attempt
carries the same Idempotency-Key, retryable failures (429, 5xx) are retried with backoff, and a
decline becomes a `Declined` exception the shop can show to the customer.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import httpx

RETRYABLE = {429, 500, 502, 503, 504}


class PaymentError(Exception):
    """The payment could not be completed; `code` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Declined(PaymentError):
    """The card was declined; `decline_code` says why."""

    def __init__(self, code: str, message: str, decline_code: str | None) -> None:
        super().__init__(code, message)
        self.decline_code = decline_code


def checkout(
    api: httpx.Client, order_id: str, amount: int, currency: str, *, attempts: int = 4, backoff: float = 0.05
) -> dict[str, Any]:
    """Charge an order; returns the charge (status `succeeded` or `pending`)."""
    body = {
        "amount": amount,
        "currency": currency,
        "description": f"Order {order_id}",
        "metadata": {"order_id": order_id},
    }
    headers = {"Idempotency-Key": f"checkout-{order_id}"}
    for attempt in range(attempts):
        response = api.post("/charge", json=body, headers=headers)
        if response.status_code == 200:
            charge: dict[str, Any] = response.json()
            return charge
        error = response.json()["error"]
        if response.status_code in RETRYABLE and attempt + 1 < attempts:
            time.sleep(float(response.headers.get("Retry-After", backoff * 2**attempt)))
            continue
        if error["code"] in ("card_declined", "expired_card"):
            raise Declined(error["code"], error["message"], error.get("decline_code"))
        raise PaymentError(error["code"], error["message"])
    raise AssertionError("unreachable")


def refund(api: httpx.Client, charge_id: str, amount: int | None = None, *, key: str | None = None) -> dict[str, Any]:
    """Refund part of a charge (or what is left of it). Every refund carries an Idempotency-Key;
    pass the same `key` to retry one whose outcome you never learnt: it is then made at most once."""
    body: dict[str, Any] = {"charge_id": charge_id, "reason": "requested_by_customer"}
    if amount is not None:
        body["amount"] = amount
    response = api.post("/refund", json=body, headers={"Idempotency-Key": key or f"refund-{uuid4()}"})
    if response.status_code != 200:
        error = response.json()["error"]
        raise PaymentError(error["code"], error["message"])
    result: dict[str, Any] = response.json()
    return result


def charge_status(api: httpx.Client, charge_id: str) -> str:
    status: str = api.get(f"/charge/{charge_id}").json()["status"]
    return status

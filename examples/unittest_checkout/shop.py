"""A small shop's payment code, the kind of app a unittest suite points at the sandbox.

`Shop` is configured the way production configures it, with the API's base URL and a bearer token,
and knows nothing about the sandbox. `buy()` charges an order once however often the network makes
it retry: every attempt carries the same Idempotency-Key, and 429 and 5xx answers are retried, after
the seconds Retry-After names when the answer has one. A decline is never retried.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

RETRYABLE = {429, 500, 502, 503, 504}


class Declined(Exception):
    """The card was declined; `reason` is the API's decline code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Shop:
    def __init__(self, base_url: str, token: str, *, attempts: int = 3, backoff: float = 0.05) -> None:
        self.api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.attempts, self.backoff = attempts, backoff

    def buy(self, order_id: str, amount: int, currency: str, **metadata: str) -> dict[str, Any]:
        """Charge an order; the charge (`succeeded` or `pending`), or Declined."""
        body = {"amount": amount, "currency": currency, "metadata": {"order_id": order_id, **metadata}}
        for attempt in range(self.attempts):
            response = self.api.post("/charge", json=body, headers={"Idempotency-Key": f"order-{order_id}"})
            if response.status_code not in RETRYABLE or attempt + 1 == self.attempts:
                break
            time.sleep(float(response.headers.get("Retry-After", self.backoff * 2**attempt)))
        if response.status_code in (400, 402) and response.json()["error"].get("decline_code"):
            raise Declined(response.json()["error"]["decline_code"])
        response.raise_for_status()
        charge: dict[str, Any] = response.json()
        return charge

    def status(self, charge_id: str) -> str:
        status: str = self.api.get(f"/charge/{charge_id}").raise_for_status().json()["status"]
        return status

    def close(self) -> None:
        self.api.close()

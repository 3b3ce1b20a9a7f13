"""The sandbox with no process and no socket: its ASGI app (`create_app`) driven in this process by
`httpx.ASGITransport`, for suites that want neither. The app is the one `payments-sandbox serve`
runs; only the transport differs. The control API is on the same app, under /__sandbox.
"""

# ruff: noqa: PT009  (plain unittest on purpose: this runs without pytest)
from __future__ import annotations

import unittest

import httpx

from sandbox import Settings, create_app

HOST = "http://localhost"  # a Host the sandbox answers; the URL never leaves this process


class InProcessTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        transport = httpx.ASGITransport(app=create_app(Settings()))
        self.api = httpx.AsyncClient(
            transport=transport, base_url=f"{HOST}/v1/payments", headers={"Authorization": "Bearer shop"}
        )
        self.addAsyncCleanup(self.api.aclose)
        self.addAsyncCleanup(self.assert_no_findings)  # runs first, while the client is open

    async def assert_no_findings(self) -> None:
        """The sandbox found nothing wrong with how the test called it."""
        findings = (await self.api.get(f"{HOST}/__sandbox/findings")).json()
        self.assertEqual(findings, {"findings": []})

    async def test_charge_then_refund(self) -> None:
        # An Idempotency-Key on every POST, so that a retry of it could never charge or refund twice.
        body = {"amount": 1500, "currency": "USD"}
        charge = (await self.api.post("/charge", json=body, headers={"Idempotency-Key": "charge-1"})).json()
        body = {"charge_id": charge["id"], "amount": 500}
        refund = await self.api.post("/refund", json=body, headers={"Idempotency-Key": "refund-1"})
        self.assertEqual(refund.status_code, 200)
        self.assertEqual((await self.api.get(f"/charge/{charge['id']}")).json()["amount_refunded"], 500)

    async def test_decline_and_the_journal(self) -> None:
        body = {"amount": 100005, "currency": "USD"}
        declined = await self.api.post("/charge", json=body, headers={"Idempotency-Key": "charge-2"})
        self.assertEqual(declined.json()["error"]["decline_code"], "generic_decline")
        journal = (await self.api.get(f"{HOST}/__sandbox/requests")).json()["requests"]
        self.assertEqual([(e["path"], e["status"]) for e in journal], [("/v1/payments/charge", 400)])


if __name__ == "__main__":
    unittest.main()

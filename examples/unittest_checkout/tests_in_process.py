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

    async def test_charge_then_refund(self) -> None:
        charge = (await self.api.post("/charge", json={"amount": 1500, "currency": "USD"})).json()
        refund = await self.api.post("/refund", json={"charge_id": charge["id"], "amount": 500})
        self.assertEqual(refund.status_code, 200)
        self.assertEqual((await self.api.get(f"/charge/{charge['id']}")).json()["amount_refunded"], 500)

    async def test_decline_and_the_journal(self) -> None:
        declined = await self.api.post("/charge", json={"amount": 100005, "currency": "USD"})
        self.assertEqual(declined.json()["error"]["decline_code"], "generic_decline")
        journal = (await self.api.get(f"{HOST}/__sandbox/requests")).json()["requests"]
        self.assertEqual([(e["path"], e["status"]) for e in journal], [("/v1/payments/charge", 400)])


if __name__ == "__main__":
    unittest.main()

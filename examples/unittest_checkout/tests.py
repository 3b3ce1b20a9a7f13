"""The shop's tests in plain unittest, against a real payments-sandbox started by `Sandbox`.

One server for the class (started in setUpClass, stopped when the class is done, even if a test
fails or the run is interrupted); a clean tenant for every test (`reset()` in setUp). After each test
the sandbox must have found nothing wrong with how the shop called it (`findings()`). Run them with
`python -m unittest -v` in this folder.
"""

# ruff: noqa: PT009, PT027  (plain unittest on purpose: these run without pytest)
from __future__ import annotations

import unittest
from pathlib import Path

import httpx
from shop import Declined, Shop

from sandbox import Sandbox

HERE = Path(__file__).resolve().parent


class ShopTest(unittest.TestCase):
    sandbox: Sandbox

    @classmethod
    def setUpClass(cls) -> None:
        cls.sandbox = cls.enterClassContext(Sandbox(port=0, scenarios=[HERE / "house.yaml"]))

    def setUp(self) -> None:
        self.sandbox.reset()
        self.addCleanup(self.assert_no_findings)  # cleanups run last first: this one after the shop closes
        self.shop = Shop(self.sandbox.base_url, self.sandbox.token)
        self.addCleanup(self.shop.close)

    def assert_no_findings(self) -> None:
        """The shop is a well-behaved client: no keyless retry, no retried hard decline, Retry-After
        waited, pending charges read again once settled."""
        self.assertEqual(self.sandbox.findings(), [])

    def test_a_charge_succeeds(self) -> None:
        charge = self.shop.buy("A-1", 1500, "USD")
        self.assertEqual(charge["status"], "succeeded")
        self.sandbox.assert_called("POST", "/charge", count=1, status=200)

    def test_a_decline_says_why(self) -> None:
        with self.assertRaises(Declined) as declined:
            self.shop.buy("A-2", 100051, "USD")
        self.assertEqual(declined.exception.reason, "insufficient_funds")

    def test_a_503_is_retried_and_charged_once(self) -> None:
        self.shop.buy("A-3", 100503, "EUR")
        self.assertEqual([e["status"] for e in self.sandbox.requests(path="/charge")], [503, 200])

    def test_a_429_is_retried_after_the_seconds_retry_after_names(self) -> None:
        shop = Shop(self.sandbox.base_url, self.sandbox.token, attempts=2)
        self.addCleanup(shop.close)
        with self.assertRaises(httpx.HTTPStatusError):  # 100429 is rate limited every time
            shop.buy("A-7", 100429, "USD")
        self.assertEqual([e["status"] for e in self.sandbox.requests(path="/charge")], [429, 429])

    def test_a_pending_charge_settles_when_the_clock_moves(self) -> None:
        charge = self.shop.buy("A-4", 100202, "GBP")
        self.assertEqual(charge["status"], "pending")
        self.sandbox.advance_clock(60)
        self.assertEqual(self.shop.status(charge["id"]), "succeeded")

    def test_the_house_rule_from_house_yaml(self) -> None:
        with self.assertRaises(Declined) as declined:
            self.shop.buy("A-5", 7100, "EUR", channel="web")
        self.assertEqual(declined.exception.reason, "fraudulent")
        self.assertEqual(self.shop.buy("A-6", 7100, "EUR", channel="store")["status"], "succeeded")

    def test_each_test_starts_clean(self) -> None:
        self.assertEqual(self.sandbox.requests(), [])


if __name__ == "__main__":
    unittest.main()

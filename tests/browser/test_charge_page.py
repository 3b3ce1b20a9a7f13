"""A charge's page: amount, status, the scenario that shaped it, refunds, timeline, raw JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .harness import BROWSER_MISSING, Client, Sandbox, screenshot

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
pytestmark = pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_a_declined_charge_shows_its_scenario(page: Page, sandbox: Sandbox, client: Client) -> None:
    charge = client.charge(100005, description="Card says no").json()["error"]["charge"]
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}")
    page.get_by_role("link", name=charge).click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("$1,000.05 USD")
    expect(page.get_by_role("heading", level=1).locator(".badge-failed")).to_be_visible()
    details = page.get_by_role("region", name="Details")
    expect(details).to_contain_text("generic_decline")
    expect(details).to_contain_text("default.yaml:")
    raw = page.get_by_role("region", name="Raw JSON")
    expect(raw).to_contain_text('"failure_code": "generic_decline"')
    expect(raw).to_contain_text(f'"id": "{charge}"')
    expect(page.get_by_role("region", name="Requests about this charge").locator("li")).to_have_count(1)
    screenshot(page, "charge-declined")

    details.get_by_role("link", name="generic_decline").click()
    rule = page.locator("#rule-charge-generic_decline")
    expect(rule).to_contain_text("100005")
    expect(rule).to_contain_text("card_declined")


def test_a_refunded_charge_lists_its_refunds(page: Page, sandbox: Sandbox, client: Client) -> None:
    charge = client.charge(5000, "JPY", description="Yen, partly refunded").json()["id"]
    assert client.refund(charge, amount=1000, reason="requested_by_customer").status_code == 200
    assert client.refund(charge, amount=500).status_code == 200
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}/charges/{charge}")

    expect(page.get_by_role("heading", level=1)).to_contain_text("¥5,000 JPY")
    expect(page.get_by_role("heading", level=1)).to_contain_text("partially refunded")
    refunds = page.get_by_role("region", name="Refunds").locator("tbody tr")
    expect(refunds).to_have_count(2)
    expect(refunds.nth(0)).to_contain_text("¥1,000 JPY")
    expect(refunds.nth(0)).to_contain_text("requested_by_customer")
    expect(refunds.nth(1)).to_contain_text("¥500 JPY")
    timeline = page.get_by_role("region", name="Timeline").locator("li")
    expect(timeline).to_have_count(3)
    expect(timeline.nth(2)).to_contain_text("Refunded ¥500 JPY")
    expect(page.get_by_role("region", name="Details")).to_contain_text("¥1,500 JPY of ¥5,000 JPY")
    screenshot(page, "charge-refunded")


def test_unknown_charge_is_a_404_page(page: Page, sandbox: Sandbox, client: Client) -> None:
    client.charge()
    response = page.goto(f"{sandbox.ui}/ui/tenants/{client.key}/charges/ch_missing")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("No such charge")

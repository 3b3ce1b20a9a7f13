"""What a developer watches: charges and requests made by the app appear without reloading the page."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .harness import BROWSER_MISSING, Client, Sandbox, screenshot

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
pytestmark = pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))

if TYPE_CHECKING:
    from playwright.sync_api import Page


def mark_page(page: Page) -> None:
    """Set a flag that a reload would wipe, so a test can prove the page was not reloaded."""
    page.evaluate("window.notReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.notReloaded") is True


def test_a_charge_made_over_the_api_appears_in_the_table(page: Page, sandbox: Sandbox, client: Client) -> None:
    client.charge(1000)
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}")
    rows = page.locator("table.charges tbody tr")
    expect(rows).to_have_count(1)
    mark_page(page)

    made = client.charge(4242, "EUR", description="Made while the page was open").json()

    row = page.locator(f'tr[data-charge="{made["id"]}"]')
    expect(row).to_contain_text("€42.42 EUR")
    expect(row).to_contain_text("Made while the page was open")
    expect(row.locator(".badge-succeeded")).to_be_visible()
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-charge", made["id"])  # newest first
    expect(page.get_by_role("link", name="All 2")).to_be_visible()
    assert_not_reloaded(page)
    screenshot(page, "charges-live")


def test_requests_appear_in_the_live_list(page: Page, sandbox: Sandbox, client: Client) -> None:
    page.goto(f"{sandbox.ui}/ui/requests?tenant={client.key}")
    expect(page.locator("#requests-empty")).to_be_visible()
    mark_page(page)

    declined = client.charge(100005, description="declined on purpose").json()["error"]["charge"]

    first = page.locator("#requests > li").first
    expect(first).to_contain_text("/v1/payments/charge")
    expect(first.locator(".req-status")).to_have_text("400")
    expect(first.locator(".req-scenario")).to_have_text("generic_decline")
    expect(page.locator("#requests-empty")).to_be_hidden()
    request_id = first.get_attribute("data-id")
    entry = page.locator(f'#requests > li[data-id="{request_id}"]')
    entry.locator("summary").click()
    bodies = entry.locator(".bodies")
    expect(bodies).to_contain_text('"amount": 100005')
    expect(bodies).to_contain_text('"decline_code": "generic_decline"')
    expect(entry.get_by_role("link", name=declined)).to_be_visible()

    client.http.get(f"/v1/payments/charge/{declined}")

    expect(page.locator("#requests > li")).to_have_count(2)
    expect(page.locator("#requests-summary")).to_have_text("2 matching requests.")
    expect(page.locator("#requests > li").first.locator(".req-method")).to_have_text("GET")
    expect(entry.locator("details")).to_have_attribute("open", "")  # what was open stays open
    assert_not_reloaded(page)
    screenshot(page, "requests-live")

    toggle = page.get_by_role("button", name="Live")  # paused, nothing new shows; resumed, it does
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    client.charge(1000)
    page.wait_for_timeout(1200)
    expect(page.locator("#requests > li")).to_have_count(2)
    toggle.click()
    expect(page.locator("#requests > li")).to_have_count(3)


def test_a_new_tenant_appears_on_the_tenants_page(page: Page, sandbox: Sandbox, client: Client) -> None:
    page.goto(f"{sandbox.ui}/")
    # Unchanged, the region is answered 204 with no body; the script keeps what it shows.
    page.wait_for_event("response", lambda r: "fragment=live" in r.url and r.status == 204)
    mark_page(page)
    expect(page.get_by_role("link", name=client.key, exact=True)).to_have_count(0)

    client.charge(1000)

    first = page.locator("table tbody tr").first  # most recently used first
    expect(first.get_by_role("link", name=client.key, exact=True)).to_be_visible()
    expect(first.locator('[data-label="Succeeded"]')).to_have_text("1")
    page.wait_for_event("response", lambda r: "fragment=live" in r.url and r.status == 204)
    expect(first.get_by_role("link", name=client.key, exact=True)).to_be_visible()
    assert_not_reloaded(page)

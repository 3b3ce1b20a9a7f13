"""Actions from the page, each confirmed first: reset a tenant, advance its clock, seed charges."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from .harness import BROWSER_MISSING, Client, Sandbox, screenshot

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
pytestmark = pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))

if TYPE_CHECKING:
    from playwright.sync_api import Dialog, Page


def answer(page: Page, accept: bool) -> list[str]:
    """Answer the next confirm() dialog; the returned list receives its message."""
    asked: list[str] = []

    def handle(dialog: Dialog) -> None:
        asked.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", handle)
    return asked


def test_reset_empties_the_tenant_after_confirming(page: Page, sandbox: Sandbox, client: Client) -> None:
    client.charge(1000)
    client.charge(2000)
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}")
    rows = page.locator("table.charges tbody tr")
    expect(rows).to_have_count(2)

    asked = answer(page, accept=False)
    page.get_by_role("button", name="Reset tenant").click()
    assert asked
    assert client.key in asked[0]
    expect(rows).to_have_count(2)
    assert client.total() == 2

    asked = answer(page, accept=True)
    page.get_by_role("button", name="Reset tenant").click()
    expect(page.get_by_role("status").filter(has_text="was reset")).to_contain_text(client.key)
    expect(page).to_have_url(re.compile(r"/__sandbox/\?notice=reset"))
    expect(page.get_by_role("link", name=client.key)).to_have_count(0)
    assert asked
    screenshot(page, "tenants-after-reset")
    assert client.total() == 0


def test_advancing_the_clock_settles_a_pending_charge(page: Page, sandbox: Sandbox, client: Client) -> None:
    pending = client.charge(100202).json()["id"]
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}/charges/{pending}")
    expect(page.get_by_role("heading", level=1).locator(".badge-pending")).to_be_visible()
    expect(page.get_by_role("region", name="Timeline")).to_contain_text("Settles to succeeded")
    screenshot(page, "charge-pending")

    page.get_by_role("link", name=client.key).click()
    page.get_by_label("Seconds").fill("60")
    answer(page, accept=True)
    page.get_by_role("button", name="Advance clock").click()

    expect(page.get_by_role("status").filter(has_text="moved forward")).to_contain_text("60 seconds")
    row = page.locator(f'tr[data-charge="{pending}"]')
    expect(row.locator(".badge-succeeded")).to_be_visible()
    expect(page.get_by_text("60 s ahead")).to_be_visible()
    assert client.get(pending)["status"] == "succeeded"

    page.get_by_role("link", name=pending).click()
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("Settled")
    expect(timeline.locator(".badge-succeeded")).to_be_visible()


def test_seeding_creates_charges(page: Page, sandbox: Sandbox, client: Client) -> None:
    client.charge()
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}")
    page.get_by_label("Count").fill("12")
    asked = answer(page, accept=True)
    page.get_by_role("button", name="Seed charges").click()
    expect(page.get_by_role("status").filter(has_text="fake charges")).to_contain_text("Created 12 fake charges")
    expect(page.get_by_role("link", name="All 13")).to_be_visible()
    assert asked
    assert client.total() == 13


def test_without_script_the_server_asks_instead(browser_no_js: Page, sandbox: Sandbox, client: Client) -> None:
    page = browser_no_js
    client.charge()
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}")
    page.get_by_role("button", name="Reset tenant").click()
    expect(page.get_by_role("heading", name="Are you sure?")).to_be_visible()
    assert client.total() == 1
    screenshot(page, "confirm-step")
    page.get_by_role("button", name="Yes, do it").click()
    expect(page.get_by_role("status").filter(has_text="was reset")).to_be_visible()
    assert client.total() == 0

"""Filters: charges by status (and their pages), requests by method, path and status."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from .harness import BROWSER_MISSING, Client, Sandbox, screenshot

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
pytestmark = pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_charges_filtered_by_status(page: Page, sandbox: Sandbox, client: Client) -> None:
    client.charge(1000)
    client.charge(100005)
    client.charge(100202)
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}")
    rows = page.locator("table.charges tbody tr")
    expect(rows).to_have_count(3)
    status_tabs = page.get_by_role("navigation", name="Filter by status")

    status_tabs.get_by_role("link", name=re.compile("^Failed")).click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("$1,000.05 USD")
    expect(rows.first.locator(".badge-failed")).to_have_text("failed")
    expect(status_tabs.get_by_role("link", name=re.compile("^Failed"))).to_have_attribute("aria-current", "page")
    screenshot(page, "charges-filtered")

    status_tabs.get_by_role("link", name=re.compile("^Pending")).click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge-pending")).to_be_visible()

    status_tabs.get_by_role("link", name=re.compile("^All")).click()
    expect(rows).to_have_count(3)


def test_charges_are_paginated(page: Page, sandbox: Sandbox, client: Client) -> None:
    client.seed(30)
    page.goto(f"{sandbox.ui}/ui/tenants/{client.key}")
    rows = page.locator("table.charges tbody tr")
    expect(rows).to_have_count(25)
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("1\u201325 of 30")
    page.get_by_role("link", name="Older").click()
    expect(rows).to_have_count(5)
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("Page 2 of 2")
    page.get_by_role("link", name="Newer").click()
    expect(rows).to_have_count(25)


def test_requests_filtered_by_method_path_and_status(page: Page, sandbox: Sandbox, client: Client) -> None:
    ok = client.charge(1000).json()["id"]
    client.charge(100005)
    client.http.get(f"/v1/payments/charge/{ok}")
    client.refund(ok)
    page.goto(f"{sandbox.ui}/ui/requests?tenant={client.key}")
    items = page.locator("#requests > li")
    expect(items).to_have_count(4)

    page.get_by_label("Method").select_option("GET")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"method=GET"))
    expect(items).to_have_count(1)
    expect(items.first.locator(".req-method")).to_have_text("GET")

    page.get_by_label("Method").select_option("POST")
    page.get_by_label("Status").fill("4xx")
    page.get_by_role("button", name="Filter").click()
    expect(items).to_have_count(1)
    expect(items.first.locator(".req-status")).to_have_text("400")
    screenshot(page, "requests-filtered")

    client.charge(100054)  # another decline arrives and matches: it appears live; a GET does not
    client.http.get("/v1/payments/charges")
    expect(items).to_have_count(2)
    expect(items.first.locator(".req-scenario")).to_have_text("expired_card")

    page.get_by_label("Status").fill("")
    page.get_by_label("Method").select_option("")
    page.get_by_label("Path contains").fill("/refund")
    page.get_by_role("button", name="Filter").click()
    expect(items).to_have_count(1)
    expect(items.first.locator(".req-path")).to_have_text("/v1/payments/refund")


def test_tenants_are_paginated(page: Page, sandbox: Sandbox) -> None:
    made = [Client(sandbox) for _ in range(51)]  # more than a page of 50, whatever other tests made
    for client in made:
        client.charge()
        client.http.close()
    page.goto(f"{sandbox.ui}/")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text(made[-1].key)
    page.get_by_role("link", name="Less recent").click()
    expect(page).to_have_url(re.compile(r"/__sandbox/\?page=2$"))
    expect(page.get_by_role("link", name=made[0].key, exact=True)).to_be_visible()
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("Page 2 of")
    page.get_by_role("link", name="More recent").click()
    expect(rows.first).to_contain_text(made[-1].key)

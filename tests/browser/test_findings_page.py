"""Findings in the browser, through a real server: a connection reset (100104, after the charge was
stored) and the keyless retry a careless client sends, seen in the journal, as a finding, and on the
page of the call that showed it; at desktop and phone width."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
import pytest

from .harness import BROWSER_MISSING, Client, Sandbox, screenshot

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
pytestmark = pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

PHONE: ViewportSize = {"width": 390, "height": 844}


def test_a_reset_and_its_keyless_retry_in_the_journal_and_the_findings(
    page: Page, sandbox: Sandbox, client: Client
) -> None:
    for _ in range(2):  # the second is a keyless retry of a POST that got a fault
        with pytest.raises(httpx.TransportError):
            client.charge(100104)

    page.goto(f"{sandbox.ui}/ui/requests?tenant={client.key}")
    rows = page.locator("#requests > li")
    expect(rows).to_have_count(2)
    expect(rows.locator(".req-path .badge-fault")).to_have_text(["connection_reset", "connection_reset"])
    expect(rows.locator(".req-status")).to_have_text(["none", "none"])  # no status line was sent
    expect(rows.first.locator(".req-path .badge-finding")).to_have_text("⚠ finding")
    expect(rows.nth(1).locator(".badge-finding")).to_have_count(0)

    page.get_by_role("link", name="Findings").click()
    page.get_by_label("Tenant").fill(client.key)
    page.get_by_role("button", name="Show").click()
    finding = page.locator("li.finding")
    expect(finding).to_have_count(1)
    expect(finding.locator(".finding-code")).to_have_text("retry_without_idempotency_key")
    expect(finding).to_contain_text("send an Idempotency-Key with every POST")
    calls = finding.locator("a.call")
    expect(calls).to_have_count(2)
    expect(calls.locator(".badge-fault")).to_have_text(["connection_reset", "connection_reset"])
    screenshot(page, "findings")

    calls.last.click()
    expect(page).to_have_url(re.compile(rf"/ui/tenants/{client.key}/requests/req_"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("POST")
    expect(page.locator("li.req details")).to_have_attribute("open", "")
    expect(page.locator("li.finding .finding-code")).to_have_text("retry_without_idempotency_key")

    page.set_viewport_size(PHONE)
    for path in (f"/ui/findings?tenant={client.key}", f"/ui/coverage?tenant={client.key}", "/ui/scenarios"):
        page.goto(sandbox.ui + path)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        if "coverage" in path:
            expect(page.locator("#faults .names.met code")).to_have_text(["connection_reset"])
    expect(page.locator("#chaos")).to_contain_text("No chaos profile")

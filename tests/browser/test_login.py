"""With --control-token, the dashboard asks for the token once and keeps it in a strict cookie."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from .harness import BROWSER_MISSING, CONTROL_TOKEN, Client, Sandbox, screenshot

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
pytestmark = pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_the_login_form_is_required_and_works(page: Page, locked_sandbox: Sandbox) -> None:
    client = Client(locked_sandbox)
    page.goto(f"{locked_sandbox.ui}/ui/requests")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")

    page.get_by_label("Control token").fill("a guess")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not this sandbox's control token")
    expect(page.get_by_label("Control token")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Control token").fill(CONTROL_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{locked_sandbox.ui}/ui/requests")
    expect(page.get_by_role("heading", name="Requests")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "sandbox_control_token")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/__sandbox/"

    client.charge(1000)  # the live list polls with the cookie
    expect(page.locator("#requests > li")).to_have_count(1)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.goto(f"{locked_sandbox.ui}/")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    client.http.close()

"""Every page, looked at: screenshots at desktop and phone width, dark mode, labels, no network.

The screenshots land in artifacts/screenshots/ (kept by CI). The README's picture of the charges
page is not a test: `python scripts/screenshot.py` rewrites docs/dashboard.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .harness import BROWSER_MISSING, Client, Sandbox, fill_shop, screenshot

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect
pytestmark = pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def shop(sandbox: Sandbox) -> Iterator[Client]:
    """A tenant that looks like a shop after a month: seeded charges plus a few live API calls."""
    client = Client(sandbox)
    fill_shop(client)
    yield client
    client.http.close()


def pages(sandbox: Sandbox, shop: Client) -> dict[str, str]:
    first = shop.http.get("/v1/payments/charges", params={"limit": 1}).json()["data"][0]["id"]
    return {
        "tenants": f"{sandbox.ui}/",
        "charges": f"{sandbox.ui}/ui/tenants/{shop.key}",
        "charge": f"{sandbox.ui}/ui/tenants/{shop.key}/charges/{first}",
        "events": f"{sandbox.ui}/ui/tenants/{shop.key}/events",
        "requests": f"{sandbox.ui}/ui/requests?tenant={shop.key}",
        "scenarios": f"{sandbox.ui}/ui/scenarios",
        "findings": f"{sandbox.ui}/ui/findings?tenant={shop.key}",
        "coverage": f"{sandbox.ui}/ui/coverage?tenant={shop.key}",
    }


def check_page(page: Page) -> None:
    """Nothing wider than the screen, every field labelled, every table column headed."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.name)"""
    )
    assert not unlabelled, f"fields without a label: {unlabelled}"
    assert page.locator("table:not(:has(thead th))").count() == 0


def test_every_page_at_desktop_width(page: Page, sandbox: Sandbox, shop: Client) -> None:
    loaded: list[str] = []

    def record(request: Request) -> None:
        loaded.append(request.url)

    page.on("requestfinished", record)
    for name, url in pages(sandbox, shop).items():
        response = page.goto(url)
        assert response is not None
        assert response.ok, name
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        if name == "requests":
            page.locator("#requests > li summary").first.click()
        check_page(page)
        screenshot(page, name)
    page.remove_listener("requestfinished", record)
    assert all(url.startswith(sandbox.url) or url.startswith("data:") for url in loaded), "left the sandbox"
    assert any("/ui/static/dashboard.css" in url for url in loaded)


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_phone_width_and_colour_schemes(browser: Browser, sandbox: Sandbox, shop: Client, scheme: str) -> None:
    context = browser.new_context(viewport=PHONE, color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    try:
        for name, url in pages(sandbox, shop).items():
            page.goto(url)
            check_page(page)
            screenshot(page, f"{name}-phone-{scheme}", full_page=False)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark = sum(int(part) for part in background[4:-1].split(",")[:3]) < 200
        assert dark == (scheme == "dark"), background
    finally:
        context.close()

"""Fixtures for the dashboard tests: a real `payments-sandbox serve` subprocess, and headless Chromium.

One server per session serves every test; each test uses its own bearer token, so its tenant is its
own. A second server, started only when a test asks for it, runs with `--control-token`.
The browser is Debian's `chromium` driven by Playwright for Python (its sync API); the browser
fixtures skip with a reason when either is missing, while the HTTP-level tests still run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .harness import CHROMIUM_FLAGS, CONTROL_TOKEN, Client, Sandbox, start

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    server = start(tmp_path_factory.mktemp("logs"))
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="session")
def locked_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A server started with --control-token CONTROL_TOKEN."""
    server = start(tmp_path_factory.mktemp("logs"), "--control-token", CONTROL_TOKEN)
    yield server
    assert server.stop() == 0, server.log()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist (`--dist loadgroup`) the browser tests run together on one worker, so Chromium starts
    once there and Playwright's event loop is closed (package scope) before that worker runs the
    async tests of other packages, which need the thread's loop slot free."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[Client]:
    made = Client(sandbox)
    yield made
    made.http.close()


# -- the browser -----------------------------------------------------------------------------
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no `chromium` on PATH (apt-get install chromium); `playwright install` is not used")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def shared_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """One tab for the whole session: opening a tab costs ~1 s on a busy CI machine, a test ~2 s."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    made = context.new_page()
    errors: list[str] = []
    made.on("pageerror", lambda error: errors.append(str(error)))
    # A 404 page logs "Failed to load resource" on purpose; test_pages checks every resource loads.
    made.on(
        "console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load" not in m.text else None
    )
    yield made, errors
    context.close()


@pytest.fixture
def page(shared_page: tuple[Page, list[str]]) -> Iterator[Page]:
    """The shared tab at 1280 px, signed out, failing the test on any script error."""
    made, errors = shared_page
    errors.clear()
    yield made
    made.goto("about:blank")  # stops the page's polling
    made.context.clear_cookies()
    made.set_viewport_size(VIEWPORT)
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def browser_no_js(browser: Browser) -> Iterator[Page]:
    """A page with JavaScript off: the dashboard must still work, minus live updates."""
    context = browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()

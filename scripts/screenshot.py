"""Rewrite docs/dashboard.png, the README's picture of the dashboard: a tenant's charges page.

    python scripts/screenshot.py [OUTPUT]

Run it from a checkout with the test extras installed (Playwright for Python) and Debian's `chromium`
on PATH. It starts its own `payments-sandbox serve` on a free port, fills one tenant the way the
browser tests do (`fill_shop` in tests/browser/harness.py), saves the page at 1280x860 and stops
the server. The picture changes with every run (dates, ids), which is why a script writes it when
asked instead of a test on every run; the page itself is checked by tests/browser.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' launcher and tenant client, not a copy

from browser.harness import CHROMIUM_FLAGS, Client, fill_shop, start  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

VIEWPORT = {"width": 1280, "height": 860}


def main(output: Path) -> None:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        sys.exit("no `chromium` on PATH: apt-get install chromium (`playwright install` is not used)")
    with tempfile.TemporaryDirectory() as logs:
        sandbox = start(Path(logs))
        try:
            client = Client(sandbox)
            fill_shop(client)
            client.http.close()
            with sync_playwright() as playwright:
                chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
                page = chromium.new_page(viewport=VIEWPORT)
                page.goto(f"{sandbox.ui}/ui/tenants/{client.key}")
                page.locator("table.charges tbody tr").first.wait_for()
                output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(output))
                chromium.close()
        finally:
            sandbox.stop()
    print(f"wrote {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png")

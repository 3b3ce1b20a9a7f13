"""What the dashboard tests share: a real `payments-sandbox serve` subprocess, an API client, screenshots."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import httpx
from sandbox_server import SandboxProcess, start_sandbox

from sandbox.auth import tenant_of

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CONTROL_TOKEN = "s3cret; token=with,odd chars"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Sandbox(SandboxProcess):
    """A running server (tests/sandbox_server.py), with the URLs the browser tests open."""

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def ui(self) -> str:
        return self.base_url + "/__sandbox"


def start(log_dir: Path, *args: str) -> Sandbox:
    started = start_sandbox(log_dir, *args)
    return Sandbox(started.proc, started.port, started.log_path)


class Client:
    """One tenant of a sandbox: the API calls an app would make, with its own bearer token."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.token = f"sk_test_{uuid4().hex}"
        self.key = tenant_of(f"Bearer {self.token}", None)  # the hashed id the dashboard shows
        self.http = httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)

    def charge(self, amount: int = 1500, currency: str = "USD", **fields: Any) -> httpx.Response:
        return self.http.post("/v1/payments/charge", json={"amount": amount, "currency": currency, **fields})

    def refund(self, charge_id: str, **fields: Any) -> httpx.Response:
        return self.http.post("/v1/payments/refund", json={"charge_id": charge_id, **fields})

    def get(self, charge_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(f"/v1/payments/charge/{charge_id}").json()
        return body

    def total(self, status: str | None = None) -> int:
        params = {"status": status} if status else {}
        return int(self.http.get("/v1/payments/charges", params=params).json()["total"])

    def seed(self, count: int, seed: int = 7) -> list[str]:
        response = self.http.post("/__sandbox/seed", json={"count": count, "seed": seed})
        assert response.status_code == 200, response.text
        ids: list[str] = response.json()["ids"]
        return ids


def fill_shop(client: Client) -> None:
    """Make `client`'s tenant look like a shop after a month: seeded charges plus a few live API
    calls (a partial refund, a decline, a pending charge). The README's screenshot shows it too."""
    client.seed(40, seed=2024)
    ok = client.charge(12900, "USD", description="Annual plan, Acme Corp", metadata={"order_id": "ORD-4242"})
    client.refund(ok.json()["id"], amount=2900, reason="requested_by_customer")
    client.charge(100005, "EUR", description="Card declined on purpose")
    client.charge(100202, "JPY", description="Konbini payment, settles in 60 s")
    client.charge(4500, "GBP", description="Monthly plan")


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save the page as artifacts/screenshots/NAME.png (a test artefact for CI to keep)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


BROWSER_MISSING = (
    "no `chromium` on PATH: these tests drive Debian's chromium (apt-get install chromium) with Playwright"
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None
    else None
)

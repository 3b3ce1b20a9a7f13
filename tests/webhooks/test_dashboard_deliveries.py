"""The dashboard shows a tenant's webhook endpoints on its Events page and each attempt to deliver
an event under the event (and on its charge's page), read from a real server as a browser reads it."""

from __future__ import annotations

import re

import httpx
import pytest
from helpers import attempts_logged, charge, page

from sandbox.auth import tenant_of
from sandbox.pytest_plugin import PaymentsSandbox
from sandbox.receiver import Receiver

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def deliveries(text: str, event_id: str) -> list[str]:
    """The delivery rows shown under one event: each row's status mark."""
    [row] = re.findall(rf'<li class="event" data-id="{event_id}"[^>]*>(.*?)</li>', text, re.S)
    return re.findall(r'<tr class="delivery" data-status="([^"]+)">', row)


async def test_attempts_are_shown_under_their_event(
    payments_sandbox: PaymentsSandbox, payments_webhooks: Receiver
) -> None:
    payments_webhooks.fail_next(1)
    made = charge(payments_sandbox)
    payments_webhooks.wait_for("charge.succeeded", status=500)
    attempts_logged(payments_sandbox, payments_webhooks.webhook_id or "", 1)
    payments_sandbox.advance_clock(10)
    payments_webhooks.wait_for("charge.succeeded")
    attempts_logged(payments_sandbox, payments_webhooks.webhook_id or "", 2)
    event_id = payments_sandbox.events()[0]["id"]
    key = tenant_of(f"Bearer {payments_sandbox.token}")
    async with httpx.AsyncClient(base_url=payments_sandbox.url, headers=payments_sandbox.headers) as client:
        events = await page(client, f"/tenants/{key}/events")
        charge_page = await page(client, f"/tenants/{key}/charges/{made['id']}")
    assert deliveries(events, event_id) == ["500", "200"]
    assert deliveries(charge_page, event_id) == ["500", "200"]
    assert payments_webhooks.url in events  # the endpoint, listed above the events
    assert payments_webhooks.webhook_id in events


async def test_a_tenant_without_endpoints_shows_no_deliveries(payments_sandbox: PaymentsSandbox) -> None:
    charge(payments_sandbox)
    event_id = payments_sandbox.events()[0]["id"]
    key = tenant_of(f"Bearer {payments_sandbox.token}")
    async with httpx.AsyncClient(base_url=payments_sandbox.url, headers=payments_sandbox.headers) as client:
        events = await page(client, f"/tenants/{key}/events")
    assert deliveries(events, event_id) == []
    assert "Webhook endpoints" not in events

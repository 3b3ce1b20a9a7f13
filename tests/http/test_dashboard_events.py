"""The dashboard's events: a tenant's events page and the events on a charge's page, in process.

Events are made the way a client makes them (scenarios/default.yaml: 100005 generic_decline,
100202 pending); the pages are read as a browser reads them, and what they show is checked against
the control API's GET /__sandbox/events.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pytest
from helpers import HTML, UI, page

from sandbox.app import create_app
from sandbox.auth import tenant_of
from sandbox.settings import Settings

pytestmark = pytest.mark.anyio
ATTACK = "<img src=x onerror=alert(1)>"


def rows(text: str) -> list[tuple[str, str, str]]:
    """(event id, type, the row's HTML) of each event a page lists."""
    return re.findall(r'<li class="event" data-id="([^"]+)" data-type="([^"]+)">(.*?)</li>', text, re.S)


def link(row: str) -> tuple[str, str]:
    """The href and text of the link a row's summary has to its charge or refund."""
    found = re.search(r'<span class="event-object"><a href="([^"]+)"><code>([^<]+)</code></a>', row)
    assert found is not None, row
    return found.group(1), found.group(2)


def events_section(text: str) -> str:
    """The Events section of a charge's page (the requests about the charge come next)."""
    [section] = re.findall(r'aria-labelledby="events-h">(.*?)</section>\s*<section[^>]*"req-h"', text, re.S)
    return str(section)


def shown_json(row: str) -> Any:
    """The event JSON an opened row shows."""
    [raw] = re.findall(r'<pre class="json"><code>(.*?)</code></pre>', row, re.S)
    return json.loads(html.unescape(raw))


async def wire(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    """The tenant's events as the control API lists them, oldest first."""
    response = await client.get("/__sandbox/events", params={"limit": "100", **params})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def a_refunded_charge(api: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A charge refunded in two parts: charge.succeeded, refund.succeeded x2, charge.refunded."""
    charge = await api.charge(amount=1500, description="two refunds")
    first = (await api.refund(charge["id"], amount=400)).json()
    second = (await api.refund(charge["id"])).json()
    return charge, first, second


async def test_the_events_page_lists_every_event_newest_first_with_its_charge(api, client, key):
    charge, first, second = await a_refunded_charge(api)
    declined = (await api.post_charge(100005)).json()["error"]["charge"]
    expected = list(reversed(await wire(client)))

    text = await page(client, f"/tenants/{key}/events")
    listed = rows(text)

    assert [(i, t) for i, t, _ in listed] == [(e["id"], e["type"]) for e in expected]
    assert [t for _, t, _ in listed] == [
        "charge.failed",
        "charge.refunded",
        "refund.succeeded",
        "refund.succeeded",
        "charge.succeeded",
    ]
    to = f"/__sandbox/ui/tenants/{key}/charges/"
    assert [link(row) for _, _, row in listed] == [
        (to + declined, declined),
        (to + charge["id"], charge["id"]),
        (to + charge["id"] + "#refunds-h", second["id"]),  # a refund links to its charge
        (to + charge["id"] + "#refunds-h", first["id"]),
        (to + charge["id"], charge["id"]),
    ]
    for (_, kind, row), event in zip(listed, expected, strict=True):
        assert f'<time datetime="{event["created_at"]}">' in row  # the tenant's sandbox clock
        assert f'<span class="badge badge-event badge-{kind.split(".")[1]}">{kind}</span>' in row
        assert "<details>" in row
        assert shown_json(row) == event
    amounts = [re.search(r'<span class="event-amount num">(.*?)</span>', row, re.S) for _, _, row in listed]
    assert [m.group(1) if m else None for m in amounts] == [
        "$1,000.05 USD",
        "$15.00 USD",
        "$11.00 USD",
        "$4.00 USD",
        "$15.00 USD",
    ]
    code = expected[0]["data"]["object"]["failure_code"]
    assert code
    assert f'<span class="reason">{code}</span>' in listed[0][2]


async def test_the_charges_page_links_to_the_events(api, client, key):
    await api.charge()
    text = await page(client, f"/tenants/{key}")
    assert f'<a href="/__sandbox/ui/tenants/{key}/events">Events</a>' in text


async def test_the_type_filter_shows_one_type_or_one_objects(api, client, key):
    await a_refunded_charge(api)
    await api.post_charge(100202)  # pending
    here = f"/__sandbox/ui/tenants/{key}/events"

    refunds = await page(client, f"/tenants/{key}/events", type="refund.*")
    assert [t for _, t, _ in rows(refunds)] == ["refund.succeeded", "refund.succeeded"]
    assert re.search(rf'<a href="{re.escape(here)}\?type=refund.%2A" aria-current="page">refund\.\* <span', refunds)

    pending = await page(client, f"/tenants/{key}/events", type="charge.pending")
    assert [t for _, t, _ in rows(pending)] == ["charge.pending"]
    assert [i for i, _, _ in rows(pending)] == [e["id"] for e in await wire(client, type="charge.pending")]
    tabs = dict(re.findall(r'\?type=[^"]+"[^>]*>([a-z.*]+) <span class="count">(\d+)</span>', pending))
    assert tabs == {
        "charge.*": "3",
        "refund.*": "2",
        "charge.succeeded": "1",
        "charge.failed": "0",
        "charge.pending": "1",
        "charge.refunded": "1",
        "refund.succeeded": "2",
        "refund.failed": "0",
    }
    assert re.search(rf'<a href="{re.escape(here)}">All <span class="count">5</span>', pending)

    none = await page(client, f"/tenants/{key}/events", type="refund.failed")
    assert rows(none) == []
    assert "No refund.failed events." in none


async def test_a_refunds_amount_is_in_its_charges_currency(api, client, key):
    charge = await api.charge(amount=5000, currency="JPY")
    await api.refund(charge["id"], amount=500)
    text = await page(client, f"/tenants/{key}/events", type="refund.*")  # no charge event on the page
    [(_, _, row)] = rows(text)
    assert '<span class="event-amount num">¥500 JPY</span>' in row


async def test_an_unknown_type_or_page_is_a_400(client, api, key):
    await api.charge()
    bad = await client.get(f"{UI}/tenants/{key}/events", params={"type": "charge.made"})
    api.error(bad, 400, code="parameter_invalid", param="type")
    assert "charge.made" not in bad.json()["error"]["message"].split("one of")[1]
    text = await page(client, f"/tenants/{key}/events", 400, type=ATTACK)
    assert "<img src=x" not in text
    api.error(await client.get(f"{UI}/tenants/{key}/events", params={"page": "0"}), 400, param="page")


async def test_events_are_paged_fifty_at_a_time(api, client, key):
    for n in range(52):
        await api.post_charge(1000 + n)
    newest = await page(client, f"/tenants/{key}/events")
    older = await page(client, f"/tenants/{key}/events", page="2")

    assert len(rows(newest)) == 50
    assert [i for i, _, _ in rows(newest) + rows(older)] == [e["id"] for e in reversed(await wire(client))]
    assert "1\N{EN DASH}50 of 52" in newest
    assert f'href="/__sandbox/ui/tenants/{key}/events?page=2">Older →</a>' in newest
    assert "51\N{EN DASH}52 of 52" in older
    assert "No events on page 3." in await page(client, f"/tenants/{key}/events", page="3")


async def test_what_clients_send_is_escaped(api, client, key):
    charge = await api.charge(description=ATTACK, metadata={"note": ATTACK})
    await api.refund(charge["id"], amount=100, metadata={"why": ATTACK})
    escaped = html.escape(ATTACK, quote=False)
    for path in (f"/tenants/{key}/events", f"/tenants/{key}/charges/{charge['id']}"):
        text = await page(client, path)
        assert "<img src=x" not in text, path
        assert text.count(escaped) >= 3, path  # in the JSON of each event
    for path in (f"/tenants/{ATTACK}/events", f"/tenants/{html.escape(ATTACK)}/events"):
        text = await page(client, path, 404)
        assert "<img src=x" not in text, path


async def test_an_unknown_tenant_is_404(client):
    missing = await client.get(f"{UI}/tenants/tn_0000000000000000/events")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    text = await page(client, "/tenants/tn_0000000000000000/events", 404)
    assert "tn_0000000000000000" in text
    assert "resource_missing" in text


async def test_a_tenant_without_events_says_so(client, key):
    await client.get("/v1/payments/charges")  # a read: a journal entry, no data
    text = await page(client, f"/tenants/{key}/events")
    assert rows(text) == []
    assert "No events yet." in text


async def test_a_charge_page_shows_its_events_and_its_refunds(api, other_api, client, key):
    charge, first, second = await a_refunded_charge(api)
    other = await api.charge(amount=2500)
    await other_api.charge()
    expected = [e for e in reversed(await wire(client)) if other["id"] not in json.dumps(e)]

    listed = rows(events_section(await page(client, f"/tenants/{key}/charges/{charge['id']}")))

    assert [i for i, _, _ in listed] == [e["id"] for e in expected]
    assert [t for _, t, _ in listed] == ["charge.refunded", "refund.succeeded", "refund.succeeded", "charge.succeeded"]
    assert [link(row)[1] for _, _, row in listed] == [charge["id"], second["id"], first["id"], charge["id"]]
    assert [shown_json(row) for _, _, row in listed] == expected
    alone = events_section(await page(client, f"/tenants/{key}/charges/{other['id']}"))
    assert [t for _, t, _ in rows(alone)] == ["charge.succeeded"]
    assert f'href="/__sandbox/ui/tenants/{key}/events"' in alone
    polled = await client.get(f"{UI}/tenants/{key}/charges/{charge['id']}", params={"fragment": "live"}, headers=HTML)
    assert 'class="event"' not in polled.text  # the poll reads no events


@pytest.fixture(scope="module")
def locked_app() -> Any:
    return create_app(Settings(control_token="ct"))


async def test_the_page_needs_the_control_token(locked_app):
    transport = httpx.ASGITransport(app=locked_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as anyone:
        key = tenant_of("Bearer tok_events_locked")
        await anyone.post(
            "/v1/payments/charge",
            json={"amount": 1500, "currency": "USD"},
            headers={"Authorization": "Bearer tok_events_locked"},
        )
        refused = await anyone.get(f"{UI}/tenants/{key}/events")
        assert refused.status_code == 401
        sent = await anyone.get(f"{UI}/tenants/{key}/events", headers=HTML)
        assert sent.status_code == 303
        assert sent.headers["location"].startswith("/__sandbox/ui/login?next=")
        signed = await anyone.get(f"{UI}/tenants/{key}/events", headers={"Sandbox-Control-Token": "ct"})
        assert signed.status_code == 200
        assert len(rows(signed.text)) == 1

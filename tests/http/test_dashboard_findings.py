"""The dashboard's findings, coverage and request pages, and the chaos profile on its pages, in process.

Findings are made the way a client makes them (scenarios/default.yaml: 100096 processing_error 500,
100005 generic_decline, 100108 malformed_json); the pages are read as a browser reads them, and the
same facts are checked against the control API's GET /__sandbox/findings and /coverage.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from helpers import HTML, UI, page

from sandbox.app import create_app
from sandbox.auth import tenant_of
from sandbox.findings import ADVICE
from sandbox.settings import Settings

pytestmark = pytest.mark.anyio
API = "/v1/payments"
ATTACK = "<img src=x onerror=alert(1)>"


def rows(text: str) -> list[str]:
    """The HTML of each row of a request journal."""
    return re.findall(r'<li class="req[^"]*"[^>]*>(.*?)</li>', text, re.S)


def findings(text: str) -> list[str]:
    """The HTML of each finding a page lists (each ends with its list of calls)."""
    return re.findall(r'<li class="finding"[^>]*>(.*?</ol>)\s*</li>', text, re.S)


def names(text: str, section: str, which: str) -> list[str]:
    """The names a coverage panel lists as met or missing."""
    panel = re.search(rf'<section class="panel" id="{section}".*?</section>', text, re.S)
    assert panel is not None, section
    [listed] = re.findall(rf'<ul class="names {which}">(.*?)</ul>', panel.group(0), re.S)
    return [html.unescape(name) for name in re.findall(r"<code>(.*?)</code>", listed)]


async def retry_without_key(api: Any) -> tuple[str, str]:
    """A 500 and its keyless retry: the ids of the two calls."""
    failed = await api.post_charge(100096)
    retry = await api.post_charge(100096)
    assert retry.headers["Sandbox-Warning"].startswith("retry_without_idempotency_key:")
    return failed.headers["Request-Id"], retry.headers["Request-Id"]


async def test_a_finding_shows_its_code_advice_time_and_requests(api, client, key):
    failed, retry = await retry_without_key(api)
    [found] = (await client.get("/__sandbox/findings")).json()["findings"]

    for text, of_tenant in (
        (await page(client, "/findings", tenant=key), True),
        (await page(client, "/findings"), False),
    ):
        finding = findings(text)[0]
        assert 'data-code="retry_without_idempotency_key"' in text
        assert ADVICE["retry_without_idempotency_key"] in finding
        assert f'<time datetime="{found["at"]}">{found["at"][:10]} {found["at"][11:19]} UTC</time>' in finding
        links = re.findall(r'<a class="call" href="([^"]+)"', finding)
        assert links == [
            f"/__sandbox/ui/tenants/{key}/requests/{failed}",
            f"/__sandbox/ui/tenants/{key}/requests/{retry}",
        ]
        assert (f'href="/__sandbox/ui/findings?tenant={key}"' in finding) is not of_tenant  # every tenant's names it

    only = await page(client, "/findings", tenant=key, code="hammering")
    assert findings(only) == []
    assert "No hammering findings for this tenant." in only
    assert re.search(r'aria-current="page" title="[^"]*">hammering <span class="count">0</span>', only)
    assert re.search(r'>retry_without_idempotency_key <span class="count">1</span>', only)


async def test_the_journal_row_and_the_request_page_mark_findings(api, client, key):
    failed, retry = await retry_without_key(api)

    journal = await page(client, "/requests", tenant=key)
    marked = {request: css for css, request in re.findall(r'<li class="req([^"]*)" data-id="([^"]+)"', journal)}
    assert marked == {retry: " has-findings", failed: ""}
    assert journal.count('<span class="badge badge-finding" title="retry_without_idempotency_key">') == 1

    shown = await page(client, f"/tenants/{key}/requests/{failed}")  # the earlier call: part of the finding
    assert "<details open>" in shown
    [finding] = findings(shown)
    assert 'class="finding-code">retry_without_idempotency_key</code>' in finding
    assert f"/requests/{retry}" in finding
    clean = await api.post_charge(1500)
    assert "None: nothing about this request was found wrong." in await page(
        client, f"/tenants/{key}/requests/{clean.headers['Request-Id']}"
    )


async def test_a_request_not_in_the_journal_is_404(client, api, key):
    await api.charge()
    response = await client.get(f"{UI}/tenants/{key}/requests/req_gone")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"
    assert "req_gone" in await page(client, f"/tenants/{key}/requests/req_gone", 404)
    assert "resource_missing" in await page(client, "/tenants/tn_0000000000000000/requests/req_x", 404)


async def test_a_network_fault_shows_in_the_journal_and_in_coverage(app, client, key):
    async with httpx.AsyncClient(  # without the contract check: a body that is not JSON is the point
        transport=httpx.ASGITransport(app=app), base_url="http://localhost", headers=client.headers
    ) as raw:
        garbled = await raw.post(f"{API}/charge", json={"amount": 100108, "currency": "USD"})

    journal = await page(client, "/requests", tenant=key)
    [row] = rows(journal)
    assert f'data-id="{garbled.headers["Request-Id"]}"' in journal
    assert '<span class="badge badge-fault" title="Network fault">malformed_json</span>' in row
    assert "<dt>Network fault</dt>" in row

    coverage = (await client.get("/__sandbox/coverage")).json()
    assert "malformed_json" in coverage["faults"]["met"]
    text = await page(client, "/coverage", tenant=key)
    for section in ("scenarios", "error_codes", "faults"):
        assert names(text, section, "met") == coverage[section]["met"], section
        assert names(text, section, "missing") == coverage[section]["missing"], section


async def test_coverage_of_every_tenant_together(api, other_api, client):
    await api.post_charge(100005)  # generic_decline
    await other_api.post_charge(100096)  # processing_error
    text = await page(client, "/coverage")
    for rule in ("generic_decline", "processing_error"):
        assert rule in names(text, "scenarios", "met")
        assert f'href="/__sandbox/ui/scenarios#rule-charge-{rule}"' in text  # to the catalog's row
    assert {"card_declined", "processing_error"} <= set(names(text, "error_codes", "met"))


async def test_what_clients_send_is_escaped_on_every_page(api, client, key):
    calls = [await client.get(f"{API}/charge/{ATTACK}") for _ in range(11)]
    assert calls[-1].headers["Sandbox-Warning"].startswith("hammering:")
    escaped = html.escape(ATTACK, quote=False)
    for path, params in (
        ("/findings", {"tenant": key}),
        ("/findings", {}),
        (f"/tenants/{key}/requests/{calls[0].headers['Request-Id']}", {}),
        ("/requests", {"tenant": key}),
    ):
        text = await page(client, path, **params)
        assert "<img src=x" not in text, path
        assert escaped in text, path

    for path, params, status in (  # the error page names the tenant or request it did not find
        ("/findings", {"tenant": ATTACK}, 404),
        ("/coverage", {"tenant": ATTACK}, 404),
        (f"/tenants/{ATTACK}/requests/{ATTACK}", {}, 404),
        (f"/tenants/{key}/requests/{ATTACK}", {}, 404),
    ):
        text = await page(client, path, status, **params)
        assert "<img src=x" not in text, path
        assert escaped in text, path
    assert "<img src=x" not in await page(client, "/findings", 400, code=ATTACK)


async def test_an_unknown_code_or_tenant_is_refused_in_the_envelope(client):
    bad = await client.get(f"{UI}/findings", params={"code": "nope"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "code"
    for path in ("/findings", "/coverage", "/scenarios"):
        missing = await client.get(UI + path, params={"tenant": "tn_0000000000000000"})
        assert missing.status_code == 404, path
        assert missing.json()["error"]["code"] == "resource_missing"


# -- the chaos profile, and the control token -----------------------------------------------------
@pytest.fixture(scope="module")
def chaos_app() -> Any:
    return create_app(Settings(chaos="bad-day", chaos_seed=7))


@pytest.fixture(scope="module")
def locked_app() -> Any:
    return create_app(Settings(control_token="ct"))


async def test_the_chaos_profile_seed_and_each_rules_chance_are_shown(chaos_app, make_client):
    client = make_client("tok_chaos", target=chaos_app)
    rules = (await client.get("/__sandbox/scenarios")).json()["rules"]
    text = await page(client, "/scenarios")

    assert 'class="mode chaos"' in text
    assert "chaos: bad-day · seed 7" in text
    [notice] = re.findall(r'<p class="notice warn" id="chaos">(.*?)</p>', text, re.S)
    assert "<code>bad-day</code>" in notice
    assert "<code>7</code>" in notice
    chances = dict(
        re.findall(r'<tr id="rule-([^"]+)">.*?<td data-label="Chance" class="num chance">(.*?)</td>', text, re.S)
    )
    assert len(chances) == len(rules)
    probabilistic = [rule for rule in rules if rule.get("probability") is not None]
    assert probabilistic, "bad-day has rules that fire by chance"
    for rule in rules:
        shown = chances[f"{rule['applies_to']}-{rule['name']}"]
        if rule.get("probability") is None:
            assert "always" in shown, rule["name"]
        else:
            assert f">{rule['probability'] * 100:g}%<" in shown, rule["name"]
    assert "chaos: bad-day" in await page(client, "/findings")  # on every page


async def test_without_chaos_the_catalog_says_how_to_turn_it_on(client):
    text = await page(client, "/scenarios")
    assert 'class="mode chaos"' not in text
    [notice] = re.findall(r'<p class="notice info" id="chaos">(.*?)</p>', text, re.S)
    assert "--chaos bad-day|flaky-network" in notice


@pytest.fixture
async def locked(locked_app: Any) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def make(**headers: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=locked_app), base_url="http://localhost", headers=headers
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def test_the_pages_need_the_control_token(locked):
    anyone = locked()
    key = tenant_of("Bearer tok_locked")
    await locked(Authorization="Bearer tok_locked").post(f"{API}/charge", json={"amount": 1500, "currency": "USD"})
    for path in ("/findings", "/coverage", f"/tenants/{key}/requests/req_x"):
        refused = await anyone.get(UI + path)
        assert refused.status_code == 401, path
        assert refused.json()["error"]["code"] == "unauthorized"
        sent = await anyone.get(UI + path, headers=HTML)
        assert sent.status_code == 303, path
        assert sent.headers["location"].startswith("/__sandbox/ui/login?next=")
    signed = locked(**{"Sandbox-Control-Token": "ct"})
    assert (await signed.get(f"{UI}/findings")).status_code == 200
    assert (await signed.get(f"{UI}/coverage", params={"tenant": key})).status_code == 200

"""A page on another site cannot change the sandbox's state through the visitor's browser.

Each state-changing control call is sent as a browser would send it from a page elsewhere (the
`Sec-Fetch-Site`/`Origin` marks, a form's body type) to a real `payments-sandbox serve`: it gets
403 in the envelope and the tenant's charge, clock and rules stay as they were. The same calls
from curl/httpx (no marks, JSON bodies) and from the sandbox's own pages keep working.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from sandbox_server import SandboxProcess

# Every state-changing control call, with a body a legitimate JSON client would send.
WRITES = [
    ("/__sandbox/reset", None),
    ("/__sandbox/seed", {"count": 2, "seed": 1}),
    ("/__sandbox/clock/advance", {"seconds": 60}),
    ("/__sandbox/scenarios", {"rules": [{"name": "x", "applies_to": "charge", "when": {"amount": 4242}, "then": {}}]}),
]
MARKS = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://evil.example"},
    {"Origin": "null"},  # a sandboxed iframe or a file: page
    {"Origin": "http://127.0.0.1:1"},  # another port is another origin
]


@pytest.fixture
def tenant(sandbox: SandboxProcess) -> Iterator[tuple[httpx.Client, str]]:
    """A tenant with one charge; yields its client and the charge id."""
    with sandbox.client(token=f"victim-{uuid.uuid4().hex}") as client:
        charge = client.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})
        assert charge.status_code == 200
        yield client, charge.json()["id"]


def assert_untouched(client: httpx.Client, charge_id: str) -> None:
    assert client.get(f"/v1/payments/charge/{charge_id}").status_code == 200
    assert client.get("/v1/payments/charges").json()["total"] == 1  # nothing seeded
    rules = client.get("/__sandbox/scenarios").json()["rules"]
    assert not any(rule["name"] == "x" for rule in rules)
    assert client.post("/v1/payments/charge", json={"amount": 4242, "currency": "USD"}).status_code == 200


def assert_forbidden(response: httpx.Response, code: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


@pytest.mark.parametrize(("path", "body"), WRITES)
@pytest.mark.parametrize("marks", MARKS)
def test_a_call_a_browser_marks_as_cross_site_changes_nothing(
    tenant: tuple[httpx.Client, str], path: str, body: object, marks: dict[str, str]
) -> None:
    client, charge_id = tenant
    response = client.post(path, json=body, headers=marks)
    assert_forbidden(response, "cross_site_request")
    assert_untouched(client, charge_id)


@pytest.mark.parametrize(("path", "body"), WRITES)
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x", None])
def test_a_body_a_form_could_send_changes_nothing(
    tenant: tuple[httpx.Client, str], path: str, body: object, ctype: str | None
) -> None:
    """The auto-submitted `<form enctype=text/plain>` of the issue, and the other form encodings,
    even from a browser too old to mark the request."""
    client, charge_id = tenant
    headers = {"Content-Type": ctype} if ctype else {}
    response = client.post(path, content=b'{"count": 2, "seconds": 60, "x": "="}', headers=headers)
    assert_forbidden(response, "unsupported_body_type")
    assert_untouched(client, charge_id)


def test_the_form_post_of_the_issue_no_longer_wipes_every_tenant(
    sandbox: SandboxProcess, tenant: tuple[httpx.Client, str]
) -> None:
    client, charge_id = tenant
    with sandbox.client() as anonymous:  # no token: the call acts on every tenant
        form = anonymous.post(
            "/__sandbox/reset",
            content=b"a=b",
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
    assert_forbidden(form, "cross_site_request")
    assert_untouched(client, charge_id)


def test_clients_that_are_not_browsers_keep_working(tenant: tuple[httpx.Client, str]) -> None:
    client, charge_id = tenant
    assert client.post("/__sandbox/clock/advance", json={"seconds": 60}).status_code == 200
    assert client.post("/__sandbox/seed", json={"count": 2, "seed": 1}).status_code == 200
    yaml = b"rules:\n  - {name: y, applies_to: charge, when: {amount: 4343}, then: {}}\n"
    loaded = client.post("/__sandbox/scenarios", content=yaml, headers={"Content-Type": "application/yaml"})
    assert loaded.status_code == 200, loaded.text
    assert client.post("/__sandbox/reset").status_code == 200  # no body at all is fine
    assert client.get(f"/v1/payments/charge/{charge_id}").status_code == 404


def test_the_sandboxs_own_pages_may_act(sandbox: SandboxProcess, tenant: tuple[httpx.Client, str]) -> None:
    client, _ = tenant
    own = {"Origin": sandbox.base_url, "Sec-Fetch-Site": "same-origin"}
    assert client.post("/__sandbox/clock/advance", json={"seconds": 1}, headers=own).status_code == 200


def test_the_dashboards_actions_refuse_other_sites_too(
    sandbox: SandboxProcess, tenant: tuple[httpx.Client, str]
) -> None:
    client, charge_id = tenant
    with sandbox.client() as browser:
        refused = browser.post(
            "/__sandbox/ui/reset",
            data={"confirmed": "yes"},
            headers={"Origin": "http://evil.example", "Accept": "application/json"},
        )
    assert_forbidden(refused, "cross_site_request")
    assert_untouched(client, charge_id)

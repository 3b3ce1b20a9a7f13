"""The dashboard over plain HTTP (no browser): status codes, escaping, the sign-in cookie, errors.

Runs against the same real server as the browser tests, so it checks what a browser would get.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from sandbox.dashboard import money

from .harness import CONTROL_TOKEN, Client, Sandbox

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.ui, timeout=10) as made:
        yield made


def envelope(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, str] = response.json()["error"]
    assert {"code", "message", "param"} <= set(error)
    return error


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (123456, "USD", "$1,234.56 USD"),
        (5, "EUR", "€0.05 EUR"),
        (5000, "JPY", "¥5,000 JPY"),
        (100005, "KRW", "₩100,005 KRW"),
        (1234, "BHD", "1.234 BHD"),
        (99999999, "SEK", "999,999.99 SEK"),
    ],
)
def test_money_uses_the_currency_minor_units(amount: int, currency: str, shown: str) -> None:
    assert money(amount, currency) == shown


def test_every_page_answers_html(http: httpx.Client, client: Client) -> None:
    charge = client.charge(100005).json()["error"]["charge"]
    for path in (
        "/",
        "/ui/",
        "/ui/requests",
        "/ui/requests?method=POST&status=4xx&path=/charge",
        "/ui/scenarios",
        f"/ui/scenarios?tenant={client.key}",
        f"/ui/tenants/{client.key}",
        f"/ui/tenants/{client.key}?status=failed&page=1",
        f"/ui/tenants/{client.key}/charges/{charge}",
    ):
        response = http.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.text.startswith("<!doctype html>")
    assert http.get("/ui/static/dashboard.css").headers["content-type"].startswith("text/css")
    assert http.get("/ui/static/dashboard.js").status_code == 200


def test_user_text_is_escaped_everywhere(http: httpx.Client, client: Client) -> None:
    attack = "<script>alert(1)</script>"
    charge = client.charge(description=attack, metadata={"note": '"><img src=x onerror=alert(2)>'}).json()
    pages = [f"/ui/tenants/{client.key}", f"/ui/tenants/{client.key}/charges/{charge['id']}", "/ui/requests"]
    for path in pages:
        text = http.get(path).text
        assert attack not in text, path
        assert "<img src=x" not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
    feed = http.get("/ui/requests.json", params={"tenant": client.key}).json()
    assert attack not in feed["html"]
    assert "&lt;script&gt;" in feed["html"]


def test_the_charges_table_and_its_live_fragment(http: httpx.Client, client: Client) -> None:
    client.seed(30)
    page = http.get(f"/ui/tenants/{client.key}").text
    assert page.count('data-charge="') == 25
    assert "1\u201325 of 30" in page  # an en dash
    assert http.get(f"/ui/tenants/{client.key}?page=2").text.count('data-charge="') == 5
    fragment = http.get(f"/ui/tenants/{client.key}", params={"fragment": "live"}).text
    assert "<html" not in fragment
    assert fragment.count('data-charge="') == 25
    failed = http.get(f"/ui/tenants/{client.key}", params={"status": "failed"}).text
    assert failed.count('data-charge="') == client.total("failed")
    assert envelope(http.get(f"/ui/tenants/{client.key}", params={"status": "lost"}), 400)["param"] == "status"


def test_the_request_feed_returns_what_is_newer_than_the_cursor(http: httpx.Client, client: Client) -> None:
    client.charge(1000)
    first = http.get("/ui/requests.json", params={"tenant": client.key}).json()
    assert first["count"] == 1
    assert not first["reset"]
    client.charge(2000)
    client.http.get("/v1/payments/charges")
    newer = http.get("/ui/requests.json", params={"tenant": client.key, "after": first["cursor"]}).json()
    assert newer["count"] == 2
    assert not newer["reset"]
    html = newer["html"]
    assert html.index("/v1/payments/charges</code>") < html.index("/v1/payments/charge</code>")  # newest first
    only_get = http.get("/ui/requests.json", params={"tenant": client.key, "after": first["cursor"], "method": "get"})
    assert only_get.json()["count"] == 1
    gone = http.get("/ui/requests.json", params={"tenant": client.key, "after": "req_forgotten"}).json()
    assert gone["reset"]
    assert gone["count"] == 3
    assert envelope(http.get("/ui/requests.json", params={"status": "abc"}), 400)["code"] == "parameter_invalid"


def test_unknown_tenant_and_charge_are_404_in_the_error_envelope(http: httpx.Client, client: Client) -> None:
    assert envelope(http.get("/ui/tenants/tn_0000000000000000"), 404)["code"] == "resource_missing"
    client.charge()
    error = envelope(http.get(f"/ui/tenants/{client.key}/charges/ch_nope"), 404)
    assert error["code"] == "resource_missing"
    assert "ch_nope" in error["message"]
    assert envelope(http.get("/ui/no-such-page"), 404)["code"] == "not_found"
    page = http.get("/ui/tenants/tn_0000000000000000", headers=HTML)  # a browser gets a page
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "resource_missing" in page.text


def test_actions_ask_for_confirmation_first(http: httpx.Client, client: Client) -> None:
    client.charge()
    asked = http.post(f"/ui/tenants/{client.key}/reset", data={"confirmed": ""}, headers=HTML)
    assert asked.status_code == 200
    assert "Are you sure?" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert client.total() == 1
    done = http.post(f"/ui/tenants/{client.key}/reset", data={"confirmed": "yes"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/__sandbox/?notice=reset&tenant={client.key}"
    assert envelope(http.get(f"/ui/tenants/{client.key}"), 404)  # gone from the store and the journal
    assert client.total() == 0


def test_seed_and_clock_actions(http: httpx.Client, client: Client) -> None:
    pending = client.charge(100202).json()["id"]
    advanced = http.post(f"/ui/tenants/{client.key}/clock", data={"seconds": "60", "confirmed": "yes"})
    assert advanced.status_code == 303
    assert client.get(pending)["status"] == "succeeded"
    seeded = http.post(f"/ui/tenants/{client.key}/seed", data={"count": "7", "seed": "", "confirmed": "yes"})
    assert seeded.status_code == 303
    assert "n=7" in seeded.headers["location"]
    http.post(f"/ui/tenants/{client.key}/seed", data={"count": "3", "confirmed": "yes"})
    assert client.total() == 1 + 7 + 3  # a blank seed is a fresh one each time: no repeated ids
    bad = http.post(f"/ui/tenants/{client.key}/seed", data={"count": "0", "confirmed": "yes"})
    assert envelope(bad, 400)["code"] == "parameter_invalid"
    bad = http.post(f"/ui/tenants/{client.key}/clock", data={"seconds": "-5", "confirmed": "yes"})
    assert envelope(bad, 400)["code"] == "parameter_invalid"


def test_cross_site_posts_are_refused(http: httpx.Client, client: Client) -> None:
    client.charge()
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}, {"Origin": "null"}):
        refused = http.post(f"/ui/tenants/{client.key}/reset", data={"confirmed": "yes"}, headers=headers)
        assert envelope(refused, 403)["code"] == "cross_site_request"
    assert client.total() == 1
    same = {"Sec-Fetch-Site": "same-origin", "Origin": str(http.base_url).removesuffix("/__sandbox/")}
    assert http.post(f"/ui/tenants/{client.key}/reset", data={"confirmed": "yes"}, headers=same).status_code == 303


def test_open_a_tenant_by_token_shows_only_its_hash(http: httpx.Client, client: Client) -> None:
    found = http.post("/ui/find", data={"token": client.token})
    assert found.status_code == 303
    assert found.headers["location"] == f"/__sandbox/ui/tenants/{client.key}"
    page = http.get(str(http.base_url.join(found.headers["location"])))
    assert page.status_code == 200
    assert client.token not in page.text
    assert envelope(http.post("/ui/find", data={"token": " "}), 400)["param"] == "token"


def test_the_control_token_cookie_flow(locked_sandbox: Sandbox) -> None:
    with httpx.Client(base_url=locked_sandbox.ui, timeout=10) as http:
        assert http.get("/health").status_code == 200
        redirect = http.get("/ui/requests", headers=HTML)
        assert redirect.status_code == 303
        assert redirect.headers["location"] == "/__sandbox/ui/login?next=%2F__sandbox%2Fui%2Frequests"
        assert envelope(http.get("/"), 401)["code"] == "unauthorized"
        assert envelope(http.post("/ui/reset", data={"confirmed": "yes"}), 401)
        assert http.get("/ui/login").status_code == 200

        wrong = http.post("/ui/login", data={"token": "guess", "next": "/__sandbox/ui/requests"})
        assert wrong.status_code == 401
        assert "not this sandbox" in wrong.text
        assert "set-cookie" not in wrong.headers
        right = http.post("/ui/login", data={"token": CONTROL_TOKEN, "next": "/__sandbox/ui/requests"})
        assert right.status_code == 303
        assert right.headers["location"] == "/__sandbox/ui/requests"
        cookie = right.headers["set-cookie"]
        assert re.search(r"HttpOnly", cookie, re.I)
        assert re.search(r"SameSite=strict", cookie, re.I)
        assert "Path=/__sandbox/" in cookie
        assert http.get("/ui/requests").status_code == 200  # httpx keeps the cookie
        assert http.get("/requests").status_code == 401  # the JSON control API wants its header, not the cookie

        http.post("/ui/logout")
        assert http.get("/").status_code == 401
    client = Client(locked_sandbox)
    client.charge()
    with httpx.Client(base_url=locked_sandbox.ui, headers={"Sandbox-Control-Token": CONTROL_TOKEN}) as http:
        assert client.key in http.get("/").text  # the header works for the dashboard too
        everything = http.post("/ui/reset", data={"confirmed": "yes"})
        assert everything.status_code == 303
        assert http.get("/requests").json() == {"requests": []}
    assert client.total() == 0
    client.http.close()


def test_login_never_redirects_off_the_dashboard(locked_sandbox: Sandbox) -> None:
    with httpx.Client(base_url=locked_sandbox.ui, timeout=10) as http:
        for target in ("https://evil.example/", "//evil.example/", "/elsewhere", "/__sandbox//evil.example"):
            response = http.post("/ui/login", data={"token": CONTROL_TOKEN, "next": target})
            assert response.headers["location"] == "/__sandbox/", target


def test_without_a_control_token_there_is_no_login(http: httpx.Client) -> None:
    response = http.get("/ui/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/__sandbox/"


def test_importing_the_app_does_not_import_jinja2() -> None:
    code = "import sys, sandbox.app; print('jinja2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"

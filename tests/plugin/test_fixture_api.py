"""The fixture's public API as a user's test meets it (inner pytest runs): `assert_called` failing
readably at the test's own line, `async_client()`, clients closed at teardown, and
`--payments-sandbox-url` given the sandbox's root or its API's URL.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import Sandbox, Tenant
from sandbox.control_client import ControlClient


def test_assert_called_fails_at_the_tests_line_with_the_calls_listed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_passes(payments_sandbox):
            client = payments_sandbox.client()
            client.post("/charge", json={"amount": 1500, "currency": "USD"})
            [charge] = payments_sandbox.assert_called("POST", "/charge", count=1)
            assert charge["status"] == 200

        def test_fails(payments_sandbox):
            client = payments_sandbox.client()
            client.post("/charge", json={"amount": 1500, "currency": "USD"})
            client.post("/charge", json={"amount": 100005, "currency": "USD"})
            payments_sandbox.assert_called("POST", "/charge", count=2, status=200)  # the line shown
        """
    )
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       payments_sandbox.assert_called("POST", "/charge", count=2, status=200)  # the line shown',
            "E       AssertionError: expected POST /v1/payments/charge -> 200 2 times, it was called once.",
            "E       This tenant's API calls, oldest first ('>' marks a match):",
            "E       > POST /v1/payments/charge -> 200",
            "E         POST /v1/payments/charge -> 400 [[]generic_decline[]]",
        ]
    )
    result.stdout.no_fnmatch_line("*remote.py*")  # the helper's own frames are hidden


def test_clients_handed_out_are_closed_at_teardown_and_async_ones_work(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        made = []

        def test_uses_both_kinds(payments_sandbox):
            sync = payments_sandbox.client(headers={"X-Shop": "1"})
            made.append(sync)
            assert sync.post("/charge", json={"amount": 1500, "currency": "USD"}).status_code == 200

            async def use():
                api = payments_sandbox.async_client()
                made.append(api)
                first = await api.get("/charges")
                second = await api.post("/charge", json={"amount": 100005, "currency": "USD"})
                return first.json()["total"], second.status_code

            assert asyncio.run(use()) == (1, 400)
            assert not any(client.is_closed for client in made)

        def test_they_were_closed_when_that_test_ended():
            assert len(made) == 2
            assert all(client.is_closed for client in made)
        """
    )
    # -W error: a socket left open would fail the run (pytest reports it as an unraisable warning).
    pytester.runpytest_subprocess("-W", "error").assert_outcomes(passed=2)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox started outside the inner runs, as a CI service would be."""
    with Sandbox(log_dir=tmp_path_factory.mktemp("service")) as sandbox:
        yield sandbox


USES_URLS = """
import os

ROOT = os.environ["ROOT"]

def test_urls_and_relative_paths(payments_sandbox):
    assert payments_sandbox.url == ROOT
    assert payments_sandbox.base_url == ROOT + "/v1/payments"
    with payments_sandbox.client() as client:
        assert client.post("/charge", json={"amount": 1500, "currency": "USD"}).status_code == 200
    for path in ("/charge", "charge", "/v1/payments/charge", ROOT + "/v1/payments/charge"):
        [entry] = payments_sandbox.requests(path=path)
        assert entry["path"] == "/v1/payments/charge"
    assert payments_sandbox.requests(path="/charges") == []
"""


@pytest.mark.parametrize("given", ["root", "api", "api/", "ini api"])
def test_the_url_option_takes_the_root_or_the_apis_url(
    pytester: pytest.Pytester, running: Sandbox, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("ROOT", running.url)
    pytester.makepyfile(USES_URLS)
    url = {"root": running.url, "api": running.base_url, "api/": running.base_url + "/"}.get(given)
    if url is None:
        pytester.makeini(f"[pytest]\npayments_sandbox_url = {running.base_url}\n")
    result = pytester.runpytest_subprocess("-W", "error", *(["--payments-sandbox-url", url] if url else []))
    result.assert_outcomes(passed=1)


def test_a_url_that_is_neither_root_nor_api_stops_the_run(pytester: pytest.Pytester, running: Sandbox) -> None:
    pytester.makepyfile("def test_x(payments_sandbox):\n    pass\n")
    result = pytester.runpytest_subprocess("--payments-sandbox-url", running.url + "/v2/payments")
    assert result.ret == 3
    result.stdout.fnmatch_lines(
        ["*no sandbox answers at */v2/payments (*/v2/payments is neither a sandbox's root nor its API*"]
    )


class _CALoads:
    """Counts the loading of CA certificates into TLS contexts: what makes httpx.Client() slow."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
            original = getattr(ssl.SSLContext, name)

            def counted(context: ssl.SSLContext, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.count += 1
                return _original(context, *args, **kwargs)

            monkeypatch.setattr(ssl.SSLContext, name, counted)


def test_clients_over_plain_http_load_no_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _CALoads(monkeypatch)
    httpx.Client().close()
    assert loads.count > 0, "the counter sees what httpx does by default"
    loads.count = 0
    tenant = Tenant(ControlClient("http://127.0.0.1:9"), "t")  # no server: making a client sends nothing
    clients = [tenant.client() for _ in range(5)]
    async_clients = [tenant.async_client() for _ in range(5)]
    assert loads.count == 0
    assert clients[0].headers["Authorization"] == "Bearer t"
    assert str(async_clients[0].base_url) == "http://127.0.0.1:9/v1/payments/"
    tenant.close()
    assert all(c.is_closed for c in [*clients, *async_clients])


def test_clients_over_https_keep_httpxs_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _CALoads(monkeypatch)
    tenant = Tenant(ControlClient("https://sandbox.example"), "t")
    with tenant.client():
        assert loads.count > 0

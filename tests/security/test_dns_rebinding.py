"""DNS rebinding: a page whose own name now points at 127.0.0.1 cannot read or drive the sandbox.

Such a page's requests carry its own name in `Host`. While the sandbox listens on a loopback
address it answers only the names it is known by (any port); everything else gets 421 in the
envelope. `--allowed-hosts` adds names; bound elsewhere, every Host is answered unless it is given.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sandbox_server import SandboxProcess, run_cli

PATHS = ["/v1/payments/charges", "/__sandbox/requests", "/__sandbox/health", "/__sandbox/", "/nowhere"]


def get(server: SandboxProcess, path: str, host: str) -> httpx.Response:
    with server.client(token="rebinding-victim", headers={"Host": host}) as client:
        return client.get(path)


def assert_misdirected(response: httpx.Response) -> None:
    assert response.status_code == 421, response.text
    error = response.json()["error"]
    assert error["code"] == "misdirected_request"
    assert "--allowed-hosts" in error["message"]
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil"])
def test_a_foreign_host_gets_421_on_every_path(sandbox: SandboxProcess, path: str, host: str) -> None:
    assert_misdirected(get(sandbox, path, host))


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:1234", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8000"])
def test_the_loopback_names_are_answered_on_any_port(sandbox: SandboxProcess, host: str) -> None:
    assert get(sandbox, "/v1/payments/charges", host).status_code == 200


def test_a_rebound_page_cannot_reset_or_read_the_journal(sandbox: SandboxProcess) -> None:
    with sandbox.client(token="kept") as client:
        charge = client.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"}).json()
        with sandbox.client(headers={"Host": "evil.example:8000"}) as page:
            assert_misdirected(page.post("/__sandbox/reset", json={}))
            assert_misdirected(page.get("/__sandbox/requests"))
        assert client.get(f"/v1/payments/charge/{charge['id']}").status_code == 200


def test_allowed_hosts_adds_names(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--allowed-hosts", "payments-sandbox,API.test")
    assert get(server, "/v1/payments/charges", "payments-sandbox:8000").status_code == 200
    assert get(server, "/v1/payments/charges", "api.test").status_code == 200
    assert get(server, "/v1/payments/charges", "localhost").status_code == 200
    assert_misdirected(get(server, "/v1/payments/charges", "evil.example"))


def test_allowed_hosts_from_the_environment(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server(env={"PAYMENTS_SANDBOX_ALLOWED_HOSTS": "compose-service"})
    assert get(server, "/__sandbox/health", "compose-service").status_code == 200
    assert_misdirected(get(server, "/__sandbox/health", "evil.example"))


def test_bound_to_every_address_any_host_is_answered(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--host", "0.0.0.0")
    assert get(server, "/v1/payments/charges", "evil.example").status_code == 200
    assert get(server, "/v1/payments/charges", "0.0.0.0").status_code == 200


def test_bound_to_every_address_allowed_hosts_still_narrows(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--host", "0.0.0.0", "--allowed-hosts", "sandbox")
    assert get(server, "/v1/payments/charges", "sandbox").status_code == 200
    assert_misdirected(get(server, "/v1/payments/charges", "evil.example"))


def test_allowed_hosts_star_answers_any(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--allowed-hosts", "*")
    assert get(server, "/v1/payments/charges", "evil.example").status_code == 200


@pytest.mark.parametrize("value", ["", "bad host", "a:80", "http://x"])
def test_a_bad_allowed_hosts_value_stops_the_cli(value: str) -> None:
    result = run_cli("serve", "--port", "1", "--allowed-hosts", value)
    assert result.returncode == 2
    assert "--allowed-hosts" in result.stderr
    assert "Traceback" not in result.stderr

"""--webhook-url (every tenant's events, signed with --webhook-secret), --webhook-allow-hosts, and
several workers sharing a store: each event is delivered once, by one of them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sandbox_server import SandboxProcess, run_cli

from sandbox.receiver import Receiver


def test_webhook_url_gets_every_tenants_events(start_server: Callable[..., SandboxProcess]) -> None:
    with Receiver(secret="whsec_from_the_flag") as receiver:
        server = start_server("--webhook-url", receiver.url, "--webhook-secret", "whsec_from_the_flag")
        for token in ("team-a", "team-b"):
            with server.client(token=token) as client:
                assert client.post("/v1/payments/charge", json={"amount": 500, "currency": "EUR"}).status_code == 200
        receiver.wait_for("charge.succeeded", count=2)
        assert len(receiver.events) == 2
        assert receiver.forged == []
        with server.client(token="team-a") as client:
            hooks = client.get("/__sandbox/webhooks", headers={}).json()
        assert hooks["data"][0]["source"] == "cli"
        assert hooks["data"][0]["url"] == receiver.url
        deleted = client_delete(server, hooks["data"][0]["id"])
        assert deleted == 400  # registered by the flag: it stays


def client_delete(server: SandboxProcess, hook_id: str) -> int:
    with server.client(token="team-a") as client:
        return client.delete(f"/__sandbox/webhooks/{hook_id}").status_code


def test_without_a_secret_one_is_made_and_printed(start_server: Callable[..., SandboxProcess]) -> None:
    with Receiver() as receiver:
        server = start_server("--webhook-url", receiver.url, check_log=False)
        deadline = time.monotonic() + 5
        while "whsec_" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        receiver.secret = "whsec_" + server.log().split("whsec_", 1)[1].split()[0]
        with server.client(token="t") as client:
            client.post("/v1/payments/charge", json={"amount": 500, "currency": "EUR"})
        receiver.wait_for("charge.succeeded")


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--webhook-url", "http://10.0.0.1/"], "--webhook-allow-hosts"),
        (["--webhook-url", "ftp://127.0.0.1/"], "http://"),
        (["--webhook-allow-hosts", "bad host"], "host name"),
    ],
)
def test_bad_webhook_flags_stop_the_cli(flags: list[str], said: str) -> None:
    result = run_cli("serve", "--port", "1", *flags)
    assert result.returncode == 2
    assert said in result.stderr


def test_allowed_hosts_may_be_registered(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--webhook-allow-hosts", "hooks.test")
    with server.client(token="t") as client:
        accepted = client.post("/__sandbox/webhooks", json={"url": "http://hooks.test:9000/in"})
        refused = client.post("/__sandbox/webhooks", json={"url": "http://other.test:9000/in"})
    assert accepted.status_code == 200
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "url_not_allowed"
    assert refused.json()["error"]["param"] == "url"


@pytest.mark.parametrize("engine", ["sqlite", "redis"])
def test_several_workers_deliver_each_event_once(
    start_server: Callable[..., SandboxProcess], tmp_path: Path, request: pytest.FixtureRequest, engine: str
) -> None:
    store = f"sqlite:///{tmp_path / 'shared.db'}" if engine == "sqlite" else request.getfixturevalue("redis_url") + "/2"
    with Receiver() as receiver:
        server = start_server("--workers", "2", "--store", store, "--webhook-url", receiver.url,
                              "--webhook-secret", "whsec_shared")  # fmt: skip
        receiver.secret = "whsec_shared"
        made = []
        for n in range(30):
            with server.client(token=f"tenant-{n % 3}") as client:  # new connections: both workers serve
                answer = client.post("/v1/payments/charge", json={"amount": 100 + n, "currency": "USD"})
                made.append(answer.json()["id"])
        receiver.wait_for("charge.succeeded", count=30, timeout=15)
        time.sleep(1.5)  # time for any second delivery to arrive
        delivered = [e["data"]["object"]["id"] for e in receiver.events]
        assert sorted(delivered) == sorted(made)

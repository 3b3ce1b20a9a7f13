"""Registering endpoints: what is refused (400 with the reason, nothing stored), including every
address that is not loopback unless --webhook-allow-hosts names it (the SSRF guard)."""

from __future__ import annotations

import pytest

from sandbox.control_client import ControlError
from sandbox.pytest_plugin import PaymentsSandbox
from sandbox.webhooks import MAX_HOOKS


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
        "http://192.168.1.1:8080/",
        "http://example.com/hook",
        "http://[fe80::1]/",
        "http://0.0.0.0:9000/",
        "http://2130706433/",  # 127.0.0.1 written as a number: not an address Python reads as loopback
        "http://127.0.0.1.nip.io/",
    ],
)
def test_other_hosts_are_refused_with_the_reason(payments_sandbox: PaymentsSandbox, url: str) -> None:
    with pytest.raises(ControlError) as refused:
        payments_sandbox.add_webhook(url)
    assert refused.value.status == 400
    assert refused.value.reason is not None
    assert "--webhook-allow-hosts" in refused.value.reason
    assert payments_sandbox.webhooks() == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/\r\nX-Injected: 1",
        "http://127.0.0.1/" + "a" * 3000,
    ],
)
def test_what_is_not_an_http_url_is_refused(payments_sandbox: PaymentsSandbox, url: str) -> None:
    with pytest.raises(ControlError) as refused:
        payments_sandbox.add_webhook(url)
    assert refused.value.status == 400
    assert payments_sandbox.webhooks() == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x", "http://127.9.9.9/x", "http://localhost:9/x", "https://[::1]:9/x"]
)
def test_loopback_urls_are_accepted(payments_sandbox: PaymentsSandbox, url: str) -> None:
    hook = payments_sandbox.add_webhook(url, ["charge.*"])
    assert hook["id"].startswith("we_")
    assert hook["secret"].startswith("whsec_")
    assert hook["events"] == ["charge.*"]
    assert payments_sandbox.webhooks() == [hook]


@pytest.mark.parametrize("events", [[], ["charge.exploded"], "charge.*", [1], ["*"] * 21])
def test_bad_event_lists_are_refused(payments_sandbox: PaymentsSandbox, events: object) -> None:
    with pytest.raises(ControlError) as refused:
        payments_sandbox.add_webhook("http://127.0.0.1:9/", events)  # type: ignore[arg-type]
    assert refused.value.status == 400
    assert "events" in (refused.value.reason or "")


def test_a_tenant_holds_a_bounded_number_of_endpoints(payments_sandbox: PaymentsSandbox) -> None:
    for n in range(MAX_HOOKS):
        payments_sandbox.add_webhook(f"http://127.0.0.1:{n + 1}/")
    with pytest.raises(ControlError) as refused:
        payments_sandbox.add_webhook("http://127.0.0.1:9999/")
    assert refused.value.status == 400
    assert len(payments_sandbox.webhooks()) == MAX_HOOKS


def test_unknown_endpoints_and_events_are_404(payments_sandbox: PaymentsSandbox) -> None:
    for call in (
        lambda: payments_sandbox.delete_webhook("we_nope"),
        lambda: payments_sandbox.deliveries("we_nope"),
        lambda: payments_sandbox.redeliver("evt_nope"),
    ):
        with pytest.raises(ControlError) as missing:
            call()
        assert missing.value.status == 404


def test_endpoints_are_a_tenants_own(payments_sandbox: PaymentsSandbox) -> None:
    from sandbox.remote import Tenant

    payments_sandbox.add_webhook("http://127.0.0.1:9/")
    other = Tenant(payments_sandbox.control, payments_sandbox.token + "-other")
    assert other.webhooks() == []
    with pytest.raises(ControlError):
        other.delete_webhook(payments_sandbox.webhooks()[0]["id"])

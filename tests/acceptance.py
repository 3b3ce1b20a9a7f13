"""The acceptance checks, written once and run against each way the sandbox ships: the CLI
(tests/acceptance_cli) and the container image (tests/container).

Each check is a plain function taking the base URL of a running sandbox (`http://127.0.0.1:8000`),
so a runner only has to start the sandbox its way and parametrize over `CHECKS`. Each check works
as a tenant of its own (a fresh bearer token), so the checks share one server, in any order, and
a reset by one of them cannot touch another's state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

API = "/v1/payments"
DECLINE_AMOUNT = 100005  # the built-in pack's generic_decline
PENDING_AMOUNT = 100202  # the built-in pack's pending_then_succeeded: settles after 60 s of sandbox time


@contextmanager
def tenant(base_url: str) -> Iterator[httpx.Client]:
    """A client of the sandbox at `base_url`, as a tenant no other check uses."""
    headers = {"Authorization": f"Bearer acceptance-{uuid.uuid4().hex}"}
    with httpx.Client(base_url=base_url, headers=headers, trust_env=False, timeout=30.0) as client:
        yield client


def _charge(client: httpx.Client, amount: int, **headers: str) -> httpx.Response:
    return client.post(f"{API}/charge", json={"amount": amount, "currency": "USD"}, headers=headers)


def charge_succeeds(base_url: str) -> None:
    with tenant(base_url) as client:
        made = _charge(client, 1500)
        assert made.status_code == 200, made.text
        charge = made.json()
        assert charge["id"].startswith("ch_")
        assert (charge["amount"], charge["currency"], charge["status"]) == (1500, "USD", "succeeded")
        assert made.headers["request-id"].startswith("req_")
        assert client.get(f"{API}/charge/{charge['id']}").json() == charge
        assert client.get(f"{API}/charges").json()["total"] == 1


def magic_amount_declines(base_url: str) -> None:
    with tenant(base_url) as client:
        declined = _charge(client, DECLINE_AMOUNT)
        assert declined.status_code == 400, declined.text
        assert declined.headers["sandbox-scenario"] == "generic_decline"
        error = declined.json()["error"]
        assert (error["code"], error["decline_code"]) == ("card_declined", "generic_decline")
        stored = client.get(f"{API}/charge/{error['charge']}").json()
        assert stored["status"] == "failed"


def refund_reduces_charge(base_url: str) -> None:
    with tenant(base_url) as client:
        charge_id = _charge(client, 1500).json()["id"]
        refund = client.post(f"{API}/refund", json={"charge_id": charge_id, "amount": 500})
        assert refund.status_code == 200, refund.text
        assert refund.json()["id"].startswith("rf_")
        assert (refund.json()["amount"], refund.json()["status"]) == (500, "succeeded")
        charge = client.get(f"{API}/charge/{charge_id}").json()
        assert (charge["amount_refunded"], charge["refunded"]) == (500, False)
        too_much = client.post(f"{API}/refund", json={"charge_id": charge_id, "amount": 1001})
        assert too_much.status_code == 400, too_much.text


def idempotent_retry_replays(base_url: str) -> None:
    with tenant(base_url) as client:
        first = _charge(client, 2500, **{"Idempotency-Key": "order-1"})
        retry = _charge(client, 2500, **{"Idempotency-Key": "order-1"})
        assert retry.status_code == first.status_code == 200
        assert retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
        assert client.get(f"{API}/charges").json()["total"] == 1
        other_body = _charge(client, 2600, **{"Idempotency-Key": "order-1"})
        assert other_body.status_code == 400
        assert other_body.json()["error"]["code"] == "idempotency_error"


def reset_forgets_tenant(base_url: str) -> None:
    with tenant(base_url) as client:
        charge_id = _charge(client, 1500).json()["id"]
        reset = client.post("/__sandbox/reset")
        assert reset.status_code == 200
        assert reset.json() == {"reset": "tenant"}
        assert client.get(f"{API}/charges").json()["total"] == 0
        assert client.get(f"{API}/charge/{charge_id}").status_code == 404


def clock_settles_pending(base_url: str) -> None:
    with tenant(base_url) as client:
        pending = _charge(client, PENDING_AMOUNT).json()
        assert pending["status"] == "pending"
        moved = client.post("/__sandbox/clock/advance", json={"seconds": 61})
        assert moved.status_code == 200
        assert moved.json()["offset_seconds"] == 61
        assert client.get(f"{API}/charge/{pending['id']}").json()["status"] == "succeeded"


def journal_lists_calls(base_url: str) -> None:
    with tenant(base_url) as client:
        _charge(client, 1500)
        _charge(client, DECLINE_AMOUNT)
        journal = client.get("/__sandbox/requests", params={"method": "POST"})
        assert journal.status_code == 200
        calls = [(e["path"], e["status"], e["scenario"]) for e in journal.json()["requests"]]
        assert sorted(calls, key=str) == [(f"{API}/charge", 200, None), (f"{API}/charge", 400, "generic_decline")]
        declined = client.get("/__sandbox/requests", params={"status": 400}).json()["requests"]
        assert [e["request_body"]["amount"] for e in declined] == [DECLINE_AMOUNT]


CHECKS: tuple[Callable[[str], None], ...] = (
    charge_succeeds,
    magic_amount_declines,
    refund_reduces_charge,
    idempotent_retry_replays,
    reset_forgets_tenant,
    clock_settles_pending,
    journal_lists_calls,
)

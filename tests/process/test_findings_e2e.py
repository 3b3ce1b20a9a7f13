"""Findings and coverage through a real server and real sockets: every finding code appears in
GET /__sandbox/findings and, where one call shows it, in that answer's Sandbox-Warning header; a
well-behaved client produces none; the faults a client met move from missing to met.

Findings made as calls come are per process (sandbox/findings.py): with two workers a retry may
land on the worker that never saw the call it repeats. Tests of those use `one_worker`, a server
of one process per store; the `tenant` fixture's servers (SQLite and Redis with two workers) serve
what holds on any worker: idempotency_key_reused (told by the answer itself), pending_never_resolved
(judged from the shared journal and store when asked), coverage, and a clean client's silence.

Magic amounts of scenarios/default.yaml: 100005 generic_decline (retryable false), 100104/100105
connection reset after/before commit, 100106-100109 the other faults (100109 a body at 50 B/s),
100202 pending (settles after 60 s), 100408 a 3 s delay, 100429 rate_limited (Retry-After: 1).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from sandbox.findings import ADVICE, FAULTS

API = "/v1/payments"
BODY = {"currency": "USD"}


@pytest.fixture(scope="module", params=["memory", "sqlite", "redis"])
def one_worker_url(request: pytest.FixtureRequest, start_server: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A server of one worker process on each store, so that every call of a tenant meets the
    same Watcher."""
    if request.param == "memory":
        return start_server().base_url
    if request.param == "sqlite":
        store = f"sqlite:///{tmp_path_factory.mktemp('findings-e2e') / 'sandbox.db'}"
    else:
        store = str(request.getfixturevalue("redis_url")) + "/4"
    return start_server("--store", store).base_url


@pytest.fixture
def one_worker(one_worker_url: str, tenants: Any) -> Any:
    """A fresh tenant of a one-worker server."""
    client: Any = tenants(one_worker_url)
    return client


def post(tenant: Any, amount: int, key: str | None = None, timeout: float = 10.0) -> httpx.Response:
    """One charge on a connection of its own (a fault closes it)."""
    headers = {"Idempotency-Key": key} if key else {}
    with httpx.Client(base_url=str(tenant.http.base_url), headers=tenant.http.headers, timeout=timeout) as client:
        return client.post(f"{API}/charge", json={"amount": amount, **BODY}, headers=headers)


@pytest.fixture
def head_of() -> Iterator[Any]:
    """`head_of(tenant, amount, key=None)`: POST a charge and return the answer once its headers
    have come, without waiting for a slow body (the connection is then closed)."""
    clients: list[httpx.Client] = []

    def head(tenant: Any, amount: int, key: str | None = None) -> httpx.Response:
        client = httpx.Client(base_url=str(tenant.http.base_url), headers=tenant.http.headers, timeout=0.5)
        clients.append(client)
        headers = {"Idempotency-Key": key} if key else {}
        request = client.build_request("POST", f"{API}/charge", json={"amount": amount, **BODY}, headers=headers)
        response = client.send(request, stream=True)
        response.close()
        return response

    yield head
    for client in clients:
        client.close()


def findings(tenant: Any, **params: str) -> list[dict[str, Any]]:
    response = tenant.http.get("/__sandbox/findings", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["findings"]
    return found


def calls(tenant: Any, method: str = "POST") -> list[dict[str, Any]]:
    """The tenant's journal of one method, oldest first."""
    response = tenant.http.get("/__sandbox/requests", params={"method": method})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


def rid(response: httpx.Response) -> str:
    return response.headers["Request-Id"]


def warned(response: httpx.Response, code: str) -> None:
    assert response.headers["Sandbox-Warning"] == f"{code}: {ADVICE[code]}"


def only(tenant: Any, code: str, requests: list[str]) -> None:
    """GET /findings lists exactly one finding: `code`, with `requests` (earliest first)."""
    [finding] = findings(tenant)
    assert (finding["code"], finding["requests"], finding["advice"]) == (code, requests, ADVICE[code])
    assert finding["at"].endswith("Z")


# -- each finding, as a careless client makes it --------------------------------------------------
def test_a_keyless_retry_after_a_connection_reset_is_retry_without_idempotency_key(one_worker):
    for _ in range(2):  # the reset comes before commit, so the retry is processed, and reset, afresh
        with pytest.raises(httpx.ReadError):
            post(one_worker, 100105)

    failed, retry = calls(one_worker)
    assert (failed["fault"], retry["fault"]) == ("connection_reset", "connection_reset")
    assert retry["findings"] == [{"code": "retry_without_idempotency_key", "requests": [failed["id"], retry["id"]]}]
    only(one_worker, "retry_without_idempotency_key", [failed["id"], retry["id"]])


def test_a_keyless_retry_after_timing_out_on_a_slow_body_is_retry_without_idempotency_key(one_worker, head_of):
    with pytest.raises(httpx.ReadTimeout):
        post(one_worker, 100109, timeout=0.5)
    retry = head_of(one_worker, 100109)

    [failed, _] = calls(one_worker)
    warned(retry, "retry_without_idempotency_key")
    only(one_worker, "retry_without_idempotency_key", [failed["id"], rid(retry)])


@pytest.mark.parametrize("one_worker_url", ["memory"], indirect=True)  # one store: it waits out the delay
def test_a_keyless_retry_after_timing_out_on_a_delay_is_retry_without_idempotency_key(one_worker):
    with pytest.raises(httpx.ReadTimeout):
        post(one_worker, 100408, timeout=0.3)
    with pytest.raises(httpx.ReadTimeout):
        post(one_worker, 100408, timeout=0.3)
    time.sleep(3.5)  # both delays end: the calls are journaled

    assert [f["code"] for f in findings(one_worker)] == ["retry_without_idempotency_key"]


def test_one_key_for_two_bodies_is_idempotency_key_reused_on_any_worker(tenant):
    key = f"k-{uuid4()}"
    first = post(tenant, 1500, key=key)
    other = post(tenant, 1600, key=key)

    assert other.status_code == 400
    assert other.json()["error"]["code"] == "idempotency_error"
    warned(other, "idempotency_key_reused")
    [finding] = findings(tenant)
    assert finding["code"] == "idempotency_key_reused"
    # The first call is named when the worker that answered the second saw it too.
    assert finding["requests"] in ([rid(other)], [rid(first), rid(other)])


def test_a_retry_sooner_than_retry_after_is_retry_after_ignored(one_worker):
    key = f"k-{uuid4()}"
    limited = post(one_worker, 100429, key=key)
    retry = post(one_worker, 100429, key=key)

    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    warned(retry, "retry_after_ignored")
    only(one_worker, "retry_after_ignored", [rid(limited), rid(retry)])


def test_retrying_a_decline_marked_not_retryable_is_retried_hard_decline(one_worker):
    declined = post(one_worker, 100005, key=f"k-{uuid4()}")
    retry = post(one_worker, 100005, key=f"k-{uuid4()}")  # a new key for the same payment

    assert declined.json()["error"]["retryable"] is False
    warned(retry, "retried_hard_decline")
    only(one_worker, "retried_hard_decline", [rid(declined), rid(retry)])


def test_a_pending_charge_never_read_after_it_settled_is_pending_never_resolved_on_any_worker(tenant):
    pending = post(tenant, 100202, key=f"k-{uuid4()}")
    assert pending.json()["status"] == "pending"
    assert findings(tenant) == []  # not settled yet: nothing to read again

    tenant.advance(61)

    assert "Sandbox-Warning" not in pending.headers
    only(tenant, "pending_never_resolved", [rid(pending)])


def test_more_than_ten_identical_gets_in_a_second_is_hammering_reported_once(one_worker):
    charge = post(one_worker, 1500, key=f"k-{uuid4()}").json()
    started = time.monotonic()
    answers = [one_worker.http.get(f"{API}/charge/{charge['id']}") for _ in range(12)]
    assert time.monotonic() - started < 1.0, "too slow a machine for eleven GETs in one second"

    assert ["Sandbox-Warning" in a.headers for a in answers] == [False] * 10 + [True, False]
    warned(answers[10], "hammering")
    only(one_worker, "hammering", [rid(a) for a in answers[:11]])


# -- a client that does it right -----------------------------------------------------------------
def test_a_well_behaved_client_produces_no_finding_on_any_store(tenant):
    """Keys on every POST (the same key only to retry the same payment), Retry-After waited,
    a hard decline not retried, a pending charge read again once it settled, few GETs."""
    answers: list[httpx.Response] = []

    key = f"k-{uuid4()}"
    with pytest.raises(httpx.ReadError):
        post(tenant, 100105, key=key)  # reset before commit: retried with its key
    with pytest.raises(httpx.ReadError):
        post(tenant, 100105, key=key)
    key = f"k-{uuid4()}"
    with pytest.raises(httpx.ReadError):
        post(tenant, 100104, key=key)  # reset after commit: the retry with its key gets the charge
    answers.append(post(tenant, 100104, key=key))

    key = f"k-{uuid4()}"
    answers.append(post(tenant, 100429, key=key))
    time.sleep(float(answers[-1].headers["Retry-After"]))
    answers.append(post(tenant, 100429, key=key))

    answers.append(post(tenant, 100005, key=f"k-{uuid4()}"))  # declined for good: not retried

    pending = post(tenant, 100202, key=f"k-{uuid4()}")
    answers.append(pending)
    tenant.advance(61)
    answers.append(tenant.http.get(f"{API}/charge/{pending.json()['id']}"))
    charge = post(tenant, 2500, key=f"k-{uuid4()}")
    answers.append(charge)
    answers.append(tenant.refund(charge.json()["id"], key=f"k-{uuid4()}"))
    answers += [tenant.http.get(f"{API}/charges") for _ in range(3)]

    assert answers[0].headers["Idempotent-Replayed"] == "true"
    assert answers[-4].json()["status"] == "succeeded"  # the pending charge, read again
    assert [a.headers.get("Sandbox-Warning") for a in answers] == [None] * len(answers)
    assert findings(tenant) == []


# -- coverage ----------------------------------------------------------------------------------
def test_each_fault_a_client_meets_moves_from_missing_to_met(tenant):
    before = tenant.http.get("/__sandbox/coverage").json()
    assert before["faults"] == {"met": [], "missing": list(FAULTS)}

    with pytest.raises(httpx.ReadError):
        post(tenant, 100104, key=f"k-{uuid4()}")
    after_one = tenant.http.get("/__sandbox/coverage").json()["faults"]
    for amount in (100106, 100107, 100108, 100109):
        # A truncated body, an empty answer, one no parser accepts, one slower than the timeout.
        with contextlib.suppress(httpx.TransportError, ValueError):
            post(tenant, amount, key=f"k-{uuid4()}", timeout=0.5).json()
    after = tenant.http.get("/__sandbox/coverage").json()

    assert after_one == {"met": ["connection_reset"], "missing": [f for f in FAULTS if f != "connection_reset"]}
    assert after["faults"] == {"met": list(FAULTS), "missing": []}
    faulty = {"reset_after_commit", "empty_response", "truncated_body", "malformed_json", "slow_body"}
    assert faulty <= set(after["scenarios"]["met"])
    assert not faulty & set(after["scenarios"]["missing"])
    assert findings(tenant) == []  # every one of them sent with a key of its own

"""Network faults on purpose, through real sockets: the client sees exactly the documented failure,
the store holds the charge only when the fault says `commit: true`, and the journal records what the
client was sent. Runs against every store (the `tenant` fixture's server; SQLite and Redis with two
workers).
"""

from __future__ import annotations

import json
from uuid import uuid4

import httpx
import pytest

API = "/v1/payments"


def _post(tenant, amount: int, key: str | None = None, timeout: float = 30.0) -> httpx.Response:
    """One charge on a connection of its own (a fault closes it)."""
    headers = {"Idempotency-Key": key} if key else {}
    with httpx.Client(base_url=str(tenant.http.base_url), headers=tenant.http.headers, timeout=timeout) as client:
        return client.post(f"{API}/charge", json={"amount": amount, "currency": "USD"}, headers=headers)


def _last_call(tenant) -> dict:
    response = tenant.http.get("/__sandbox/requests", params={"method": "POST"})
    assert response.status_code == 200, response.text
    return response.json()["requests"][-1]  # oldest first


@pytest.mark.parametrize(
    ("amount", "error", "fault"),
    [
        (100104, httpx.ReadError, "connection_reset"),
        (100105, httpx.ReadError, "connection_reset"),
        (100106, httpx.RemoteProtocolError, "empty_response"),
        (100107, httpx.RemoteProtocolError, "truncated_body"),
    ],
)
def test_a_cut_connection_raises_the_documented_httpx_error(tenant, amount, error, fault):
    with pytest.raises(error):
        _post(tenant, amount)

    call = _last_call(tenant)
    assert call["fault"] == fault
    assert call["scenario"] is not None


def test_a_reset_sends_no_byte_and_the_journal_says_so(tenant):
    with pytest.raises(httpx.ReadError, match="reset"):
        _post(tenant, 100104)

    call = _last_call(tenant)
    assert (call["status"], call["response_body"]) == (0, None)


def test_a_truncated_body_announces_the_whole_length_and_sends_half(tenant):
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        _post(tenant, 100107)

    call = _last_call(tenant)
    sent = call["response_body"]  # half a JSON text is kept as text
    assert isinstance(sent, str)
    assert sent.startswith('{"id":"ch_')
    assert f"received {len(sent)} bytes, expected" in str(caught.value)
    assert call["status"] == 200


def test_malformed_json_is_a_whole_answer_no_parser_accepts(tenant):
    response = _post(tenant, 100108)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert len(response.content) == int(response.headers["Content-Length"])
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert _last_call(tenant)["fault"] == "malformed_json"


def test_a_slow_body_times_out_a_client_reading_with_a_short_timeout_and_arrives_whole_for_a_patient_one(tenant):
    with pytest.raises(httpx.ReadTimeout):
        _post(tenant, 100109, timeout=0.5)

    patient = _post(tenant, 100109, timeout=10)

    assert patient.status_code == 200
    assert patient.json()["amount"] == 100109
    assert patient.headers["Sandbox-Scenario"] == "slow_body"


def test_after_commit_the_charge_is_stored_and_the_retry_with_the_key_gets_it(tenant):
    key = f"k-{uuid4()}"
    with pytest.raises(httpx.ReadError):
        _post(tenant, 100104, key=key)

    stored = tenant.charges()["data"]
    retry = _post(tenant, 100104, key=key)

    assert [c["amount"] for c in stored] == [100104]
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == stored[0]["id"]
    assert tenant.charges()["total"] == 1


@pytest.mark.parametrize("amount", [100106, 100107, 100108])
def test_every_fault_after_commit_stores_the_charge_once(tenant, amount):
    with pytest.raises((httpx.TransportError, json.JSONDecodeError)):
        _post(tenant, amount).json()

    assert [c["amount"] for c in tenant.charges()["data"]] == [amount]


def test_before_commit_nothing_is_stored_and_the_key_is_free_for_the_retry(tenant):
    key = f"k-{uuid4()}"
    with pytest.raises(httpx.ReadError):
        _post(tenant, 100105, key=key)
    with pytest.raises(httpx.ReadError):  # processed afresh, so reset afresh: the rule still matches
        _post(tenant, 100105, key=key)

    assert tenant.charges()["total"] == 0
    ordinary = _post(tenant, 1500, key=f"k-{uuid4()}")
    assert ordinary.status_code == 200

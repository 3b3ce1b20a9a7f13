"""A bug (an exception no input should cause) still answers a 500 in the envelope, is journaled, and
is raised again after the answer: the server logs it, and an in-process test client fails the test
that caused it instead of the bug passing unseen."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.app import create_app
from sandbox.payments import Payments
from sandbox.settings import Settings
from sandbox.tenants import Tenants

API = "http://127.0.0.1/v1/payments"
CONTROL = "http://127.0.0.1/__sandbox"
AUTH = {"Authorization": "Bearer sk_test_bug"}
pytestmark = pytest.mark.anyio


class Bug(Exception):
    pass


def explode(*args: Any, **kwargs: Any) -> Any:
    raise Bug("a bug in the sandbox")


def client(app: Any, *, raise_app_exceptions: bool) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, headers=AUTH)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(Payments, "get_charge", explode)
    monkeypatch.setattr(Tenants, "reset", explode)
    return create_app(Settings())


async def test_an_api_bug_fails_the_in_process_test_that_caused_it(app: Any) -> None:
    async with client(app, raise_app_exceptions=True) as http:
        with pytest.raises(Bug):
            await http.get(f"{API}/charge/ch_1")


async def test_an_api_bug_answers_500_in_the_envelope_and_is_journaled(app: Any) -> None:
    async with client(app, raise_app_exceptions=False) as http:
        response = await http.get(f"{API}/charge/ch_1")
        assert response.status_code == 500
        assert response.json() == {
            "error": {"code": "internal_error", "message": "The sandbox hit a bug; please report it.", "param": None}
        }
        assert response.headers["request-id"].startswith("req_")
        journal = (await http.get(f"{CONTROL}/requests")).json()["requests"]
        assert [(e["path"], e["status"]) for e in journal] == [("/v1/payments/charge/ch_1", 500)]
        # The server goes on answering.
        assert (await http.post(f"{API}/charge", json={"amount": 100, "currency": "USD"})).status_code == 200


async def test_a_control_api_bug_answers_500_in_the_envelope_and_fails_the_test(app: Any) -> None:
    async with client(app, raise_app_exceptions=False) as http:
        response = await http.post(f"{CONTROL}/reset", json={})
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"
    async with client(app, raise_app_exceptions=True) as http:
        with pytest.raises(Bug):
            await http.post(f"{CONTROL}/reset", json={})


async def test_a_refused_request_is_not_a_bug(app: Any) -> None:
    async with client(app, raise_app_exceptions=True) as http:
        response = await http.post(f"{API}/charge", content=b"{", headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_json"

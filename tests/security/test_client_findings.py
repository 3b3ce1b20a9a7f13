"""Behaviour a real client tripped over, through a real server: fail-once per payment, error messages
in JSON's words, newest-first by date, and a server that keeps answering during heavy uploads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
from robustness.sandbox_proc import run_async
from sandbox_server import SandboxProcess

UNAVAILABLE_ONCE = {"amount": 100503, "currency": "EUR"}  # the built-in fail_first_attempt rule


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    with sandbox.client(token=f"client-{uuid.uuid4().hex}") as made:
        yield made


def test_fail_once_is_per_idempotency_key(client: httpx.Client) -> None:
    """Two payments with equal bodies and their own keys each fail once: A B A B -> 503 503 200 200."""
    statuses = [
        client.post("/v1/payments/charge", json=UNAVAILABLE_ONCE, headers={"Idempotency-Key": key}).status_code
        for key in ("payment-a", "payment-b", "payment-a", "payment-b")
    ]
    assert statuses == [503, 503, 200, 200]
    assert client.get("/v1/payments/charges").json()["total"] == 2


def test_a_retrying_client_stores_one_charge_per_payment(client: httpx.Client) -> None:
    for payment in range(5):
        key = f"order-{payment}"
        for _attempt in range(3):
            answer = client.post("/v1/payments/charge", json=UNAVAILABLE_ONCE, headers={"Idempotency-Key": key})
            if answer.status_code == 200:
                break
            assert answer.status_code == 503
        else:
            pytest.fail(f"payment {payment} never succeeded")
    charges = client.get("/v1/payments/charges", params={"limit": 100}).json()
    assert charges["total"] == 5


def test_without_a_key_the_body_is_the_payment(client: httpx.Client) -> None:
    statuses = [client.post("/v1/payments/charge", json=UNAVAILABLE_ONCE).status_code for _ in range(3)]
    assert statuses == [503, 200, 503]  # the success cleared the mark: the same body again is a new payment


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"amount": True, "currency": "USD"}, "amount: true is not of type 'integer'"),
        ({"amount": None, "currency": "USD"}, "amount: null is not of type 'integer'"),
        ({"amount": 1500, "currency": "USD", "description": False}, "description: false is not of type 'string'"),
        ({"amount": 1500, "currency": "USD", "metadata": {"a": None}}, "metadata.a: null is not of type 'string'"),
        ({"amount": 1500, "currency": "USD", "metadata": []}, "metadata: [] is not of type 'object'"),
        ({"amount": 1.5, "currency": "USD"}, "amount: 1.5 is not of type 'integer'"),
    ],
)
def test_error_messages_quote_json_not_python(client: httpx.Client, body: object, message: str) -> None:
    response = client.post("/v1/payments/charge", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message


def test_newest_first_means_by_created_at(client: httpx.Client) -> None:
    """Seeded charges are dated over the last 30 days; charges made through the API are dated now,
    so they list first, and the seeded ones follow in date order, whatever the order of creation."""
    before = client.post("/v1/payments/charge", json={"amount": 100, "currency": "USD"}).json()
    seeded = client.post("/__sandbox/seed", json={"count": 300, "seed": 7}).json()["ids"]
    after = client.post("/v1/payments/charge", json={"amount": 200, "currency": "USD"}).json()
    rows = []
    for offset in range(0, 302, 100):
        page = client.get("/v1/payments/charges", params={"limit": 100, "offset": offset}).json()
        assert page["total"] == 302
        rows += page["data"]
    assert [r["id"] for r in rows[:2]] == [after["id"], before["id"]]  # same second: creation order
    assert sorted(r["id"] for r in rows[2:]) == sorted(seeded)
    dates = [r["created_at"] for r in rows]
    assert dates == sorted(dates, reverse=True)
    for status in ("succeeded", "failed", "pending"):
        filtered = client.get("/v1/payments/charges", params={"limit": 100, "status": status}).json()["data"]
        assert [r["created_at"] for r in filtered] == sorted((r["created_at"] for r in filtered), reverse=True)


def rules_yaml(count: int) -> bytes:
    lines = ["rules:"]
    lines += [
        f"  - {{name: r{n}, applies_to: charge, when: {{amount: {200_000 + n}}}, then: {{delay_ms: 0}}}}"
        for n in range(count)
    ]
    return "\n".join(lines).encode()


async def health_during(server: SandboxProcess, heavy: str, body: bytes, ctype: str) -> list[str]:
    """Start a heavy control call, then ask for health while it runs; the order the answers came in."""
    finished: list[str] = []
    headers = {"Authorization": f"Bearer heavy-{uuid.uuid4().hex}", "Content-Type": ctype}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, trust_env=False) as http:

        async def call_heavy() -> None:
            response = await http.post(heavy, content=body, headers=headers)
            assert response.status_code == 200, response.text
            finished.append("heavy")

        async def call_health() -> None:
            await asyncio.sleep(0.02)  # the heavy call has been sent and is being worked on
            assert (await http.get("/__sandbox/health")).status_code == 200
            finished.append("health")

        await asyncio.gather(call_heavy(), call_health())
    return finished


@pytest.mark.parametrize(
    ("heavy", "body", "ctype"),
    [
        ("/__sandbox/scenarios", rules_yaml(10_000), "application/yaml"),
        ("/__sandbox/seed", b'{"count": 10000, "seed": 3}', "application/json"),
    ],
    ids=["10,000-rule upload", "10,000-charge seed"],
)
def test_health_is_answered_while_a_heavy_call_runs(
    sandbox: SandboxProcess, heavy: str, body: bytes, ctype: str
) -> None:
    order = run_async(lambda: health_during(sandbox, heavy, body, ctype))
    assert order[0] == "health", order  # answered before the heavy call finished, not after
    assert order[-1] == "heavy"

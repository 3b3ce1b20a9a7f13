"""The webhook calls of the control API answer what its OpenAPI document says, in process (the app's
deliverer runs on the test's event loop and posts to a real receiver)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from control_contract import check

from sandbox.receiver import Receiver

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
async def deliverer_stopped(app: Any, client: httpx.AsyncClient) -> AsyncIterator[None]:
    """In process nothing runs the app's lifespan, which stops its deliverer: the test does, before
    its event loop ends (and before `client`'s teardown lets go of the store)."""
    yield
    await app.api.payments.webhooks.close()


async def delivered(client: httpx.AsyncClient, hook_id: str) -> list[dict[str, Any]]:
    for _ in range(100):
        answer = await check(client, f"/webhooks/{hook_id}/deliveries", template="/webhooks/{hook_id}/deliveries")
        attempts: list[dict[str, Any]] = answer["data"]
        if attempts:
            return attempts
        await asyncio.sleep(0.05)
    raise AssertionError("no delivery attempt within 5 s")


async def test_register_list_deliver_redeliver_delete_as_documented(api: Any, client: httpx.AsyncClient) -> None:
    with Receiver() as receiver:
        hook = await check(client, "/webhooks", method="POST", json={"url": receiver.url, "events": ["charge.*"]})
        receiver.secret = hook["secret"]
        assert (await check(client, "/webhooks"))["data"] == [hook]
        made = await api.charge(amount=1500, currency="USD")
        attempts = await delivered(client, hook["id"])
        assert attempts[0]["status"] == 200
        assert attempts[0]["object"] == made["id"]
        assert [e["data"]["object"]["id"] for e in receiver.events] == [made["id"]]
        event_id = attempts[0]["event"]
        again = await check(
            client, f"/events/{event_id}/redeliver", method="POST", json={}, template="/events/{event_id}/redeliver"
        )
        assert len(again["deliveries"]) == 1
        gone = await check(client, f"/webhooks/{hook['id']}", method="DELETE", template="/webhooks/{hook_id}")
        assert gone == {"id": hook["id"], "deleted": True}


@pytest.mark.parametrize(
    ("method", "path", "template", "body", "status"),
    [
        ("POST", "/webhooks", None, {"url": "http://10.0.0.1/"}, 400),
        ("POST", "/webhooks", None, {"events": ["*"]}, 400),
        ("POST", "/webhooks", None, {"url": ["http://127.0.0.1/"]}, 400),
        ("POST", "/webhooks", None, [], 400),
        ("POST", "/webhooks", None, {"url": "http://127.0.0.1:9/", "secret": "mine"}, 400),
        ("DELETE", "/webhooks/we_nope", "/webhooks/{hook_id}", None, 404),
        ("GET", "/webhooks/we_nope/deliveries", "/webhooks/{hook_id}/deliveries", None, 404),
        ("POST", "/events/evt_nope/redeliver", "/events/{event_id}/redeliver", {}, 404),
    ],
)
async def test_refusals_are_answered_as_documented(
    client: httpx.AsyncClient, method: str, path: str, template: str | None, body: Any, status: int
) -> None:
    answer = await check(client, path, method=method, json=body, template=template)
    assert answer["error"]["code"]
    response = await client.request(method, f"/__sandbox{path}", json=body)
    assert response.status_code == status

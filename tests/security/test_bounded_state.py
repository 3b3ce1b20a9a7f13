"""Memory is bounded whatever clients send: tenants are capped and only writes make one, and the
journal keeps at most 255 characters of a path. All through a real `payments-sandbox serve`."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from sandbox_server import SandboxProcess, run_cli


def health(server: SandboxProcess) -> dict[str, int]:
    with server.client() as client:
        tenants: dict[str, int] = client.get("/__sandbox/health").json()["tenants"]
        return tenants


def charge(client: httpx.Client) -> str:
    made = client.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})
    assert made.status_code == 200, made.text
    charge_id: str = made.json()["id"]
    return charge_id


def test_reads_and_rejected_requests_create_no_tenant(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--max-tenants", "2")
    with server.client(token="first") as first, server.client(token="second") as second:
        kept = [charge(first), charge(second)]
        for n in range(30):
            with server.client(token=f"passer-by-{n}") as passer_by:
                assert passer_by.get("/v1/payments/charges").status_code == 200
                assert passer_by.get(f"/v1/payments/charge/{kept[0]}").status_code == 404  # not theirs
                assert passer_by.post("/v1/payments/charge", json={"amount": 0, "currency": "USD"}).status_code == 400
                assert passer_by.post("/v1/payments/refund", json={"charge_id": kept[0]}).status_code == 404
                rate_limited = passer_by.post("/v1/payments/charge", json={"amount": 100429, "currency": "USD"})
                assert rate_limited.status_code == 429
                assert passer_by.get("/__sandbox/scenarios").status_code == 200
        assert health(server) == {"count": 2, "max": 2, "dropped": 0}
        assert first.get(f"/v1/payments/charge/{kept[0]}").status_code == 200
        assert second.get(f"/v1/payments/charge/{kept[1]}").status_code == 200


def test_the_least_recently_used_tenant_is_dropped_when_full(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server("--max-tenants", "3", check_log=False)
    clients = [server.client(token=f"t{n}") for n in range(4)]
    try:
        ids = [charge(client) for client in clients[:3]]
        assert clients[0].get(f"/v1/payments/charge/{ids[0]}").status_code == 200  # t0 is now the most recent
        ids.append(charge(clients[3]))  # a fourth tenant: t1, the least recently used, goes
        assert clients[1].get(f"/v1/payments/charge/{ids[1]}").status_code == 404
        for n in (0, 2, 3):
            assert clients[n].get(f"/v1/payments/charge/{ids[n]}").status_code == 200
        assert health(server) == {"count": 3, "max": 3, "dropped": 1}
    finally:
        for client in clients:
            client.close()
    assert server.stop() == 0
    assert "dropped tenant tn_" in server.log()
    assert "--max-tenants 3" in server.log()


def test_the_journal_keeps_at_most_255_characters_of_a_path(sandbox: SandboxProcess) -> None:
    token = f"long-path-{uuid.uuid4().hex}"
    with sandbox.client(token=token) as client:
        long_id = "ch_" + "x" * 60_000
        assert client.get(f"/v1/payments/charge/{long_id}").status_code == 400  # over the id's maxLength
        entries = client.get("/__sandbox/requests").json()["requests"]
        unknown = "/v1/payments/" + uuid.uuid4().hex + "y" * 60_000
        assert client.get(unknown).status_code == 404  # no route, so no tenant: journaled for all to see
    with sandbox.client() as anyone:
        entries += [e for e in anyone.get("/__sandbox/requests").json()["requests"] if e["path"] == unknown[:255]]
    assert [len(e["path"]) for e in entries] == [255, 255]
    assert entries[0]["path"] == f"/v1/payments/charge/{long_id}"[:255]


def test_a_bad_max_tenants_stops_the_cli() -> None:
    for value in ("0", "-1", "ten", "²", "٣"):
        result = run_cli("serve", "--port", "1", "--max-tenants", value)
        assert result.returncode == 2, value
        assert "--max-tenants" in result.stderr
        assert "Traceback" not in result.stderr


def upload(client: httpx.Client, first: int, count: int) -> httpx.Response:
    rules = [
        f"  - {{name: r{n}, applies_to: charge, when: {{amount: {300_000 + n}}}, then: {{}}}}"
        for n in range(first, first + count)
    ]
    body = ("rules:\n" + "\n".join(rules)).encode()
    return client.post("/__sandbox/scenarios", content=body, headers={"Content-Type": "application/yaml"})


def test_a_tenant_holds_at_most_10000_uploaded_rules(sandbox: SandboxProcess) -> None:
    with sandbox.client(token=f"uploader-{uuid.uuid4().hex}") as client:
        assert upload(client, 0, 6_000).status_code == 200
        assert upload(client, 0, 6_000).status_code == 200  # the same names replace, not add
        refused = upload(client, 6_000, 6_000)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_scenarios"
        assert "10000" in refused.json()["error"]["message"]
        names = {rule["name"] for rule in client.get("/__sandbox/scenarios").json()["rules"]}
        assert "r5999" in names
        assert "r6000" not in names  # the refused upload changed nothing
        assert client.post("/__sandbox/reset").status_code == 200
        assert upload(client, 6_000, 6_000).status_code == 200

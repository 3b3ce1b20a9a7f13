"""Shared and durable state: two sandbox processes on one SQLite file or one Redis database behave
as one sandbox (money rules atomic across them, resets and clocks seen at once); SQLite keeps every
answered write through `kill -9`; Redis keeps everything through restarts of the sandboxes; a lost
store gives 503 `store_unavailable` and the sandbox recovers when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis_server import start_redis
from sandbox_proc import run_async
from sandbox_server import SandboxProcess, free_port, run_cli, start_sandbox

API = "/v1/payments"


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("redis_url")) + f"/{4 + int(uuid.uuid4().int % 8)}"


@pytest.fixture
def pair(start_server: Callable[..., SandboxProcess], store_url: str) -> tuple[SandboxProcess, SandboxProcess]:
    """Two sandbox processes, each on its own port, sharing one store."""
    return start_server("--store", store_url), start_server("--store", store_url)


async def spread(
    servers: tuple[SandboxProcess, SandboxProcess], token: str, count: int, path: str, body: dict, key: str | None
) -> list[httpx.Response]:
    """`count` concurrent POSTs, alternating between the two processes."""
    headers = {"Authorization": f"Bearer {token}", **({"Idempotency-Key": key} if key else {})}
    clients = [
        httpx.AsyncClient(base_url=s.base_url + API, headers=headers, timeout=60, trust_env=False) for s in servers
    ]
    try:
        return list(await asyncio.gather(*(clients[n % 2].post(path, json=body) for n in range(count))))
    finally:
        for client in clients:
            await client.aclose()


def test_concurrent_partial_refunds_across_processes_never_refund_more(
    pair: tuple[SandboxProcess, SandboxProcess],
) -> None:
    token = f"refunds-{uuid.uuid4().hex}"
    with pair[0].client(token=token) as client:
        charge = client.post(API + "/charge", json={"amount": 1000, "currency": "USD"}).json()
    answers = run_async(lambda: spread(pair, token, 50, "/refund", {"charge_id": charge["id"], "amount": 30}, None))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 33, statuses
    assert all(r.json()["error"]["code"] == "amount_too_large" for r in answers if r.status_code != 200)
    for server in pair:
        with server.client(token=token) as client:
            assert client.get(f"{API}/charge/{charge['id']}").json()["amount_refunded"] == 990


def test_one_idempotency_key_across_processes_makes_one_charge(pair: tuple[SandboxProcess, SandboxProcess]) -> None:
    token = f"key-{uuid.uuid4().hex}"
    body = {"amount": 1500, "currency": "USD"}
    answers = run_async(lambda: spread(pair, token, 20, "/charge", body, "one-key"))
    made = {r.json()["id"] for r in answers if r.status_code == 200}
    assert len(made) == 1, [r.text for r in answers]
    assert {r.status_code for r in answers} <= {200, 409}
    for server in pair:
        with server.client(token=token) as client:
            assert client.get(API + "/charges").json()["total"] == 1


def test_a_reset_and_a_clock_move_on_one_process_are_seen_by_the_other(
    pair: tuple[SandboxProcess, SandboxProcess],
) -> None:
    token = f"seen-{uuid.uuid4().hex}"
    with pair[0].client(token=token) as first, pair[1].client(token=token) as second:
        pending = first.post(API + "/charge", json={"amount": 100202, "currency": "USD"}).json()
        assert second.get(f"{API}/charge/{pending['id']}").json()["status"] == "pending"
        assert first.post("/__sandbox/clock/advance", json={"seconds": 61}).status_code == 200
        assert second.get(f"{API}/charge/{pending['id']}").json()["status"] == "succeeded"
        rules = (
            b"rules:\n  - {name: house, applies_to: charge, when: {amount: 4242},\n"
            b"     then: {status: 402, error: {code: card_declined, message: Declined.}}}\n"
        )
        loaded = first.post("/__sandbox/scenarios", content=rules, headers={"Content-Type": "application/yaml"})
        assert loaded.status_code == 200, loaded.text
        assert second.post(API + "/charge", json={"amount": 4242, "currency": "USD"}).status_code == 402
        assert [e["status"] for e in second.get("/__sandbox/requests").json()["requests"]][-1] == 402
        assert first.post("/__sandbox/reset").status_code == 200
        assert second.get("/__sandbox/requests").json()["requests"] == []
        assert second.get(f"{API}/charge/{pending['id']}").status_code == 404
        assert second.post(API + "/charge", json={"amount": 4242, "currency": "USD"}).status_code == 200


def test_workers_share_the_store(start_server: Callable[..., SandboxProcess], store_url: str) -> None:
    server = start_server("--store", store_url, "--workers", "2")
    token = f"workers-{uuid.uuid4().hex}"
    with server.client(token=token) as client:
        made = [
            client.post(API + "/charge", json={"amount": 100 + n, "currency": "USD"}).json()["id"] for n in range(20)
        ]
    for _ in range(10):  # new connections land on either worker
        with server.client(token=token) as client:
            assert client.get(API + "/charges", params={"limit": 100}).json()["total"] == 20
            assert client.get(f"{API}/charge/{made[0]}").status_code == 200
    with server.client() as anyone:
        health = anyone.get("/__sandbox/health").json()
    assert health["store"] == {"kind": store_url.split(":")[0], "reachable": True}


def test_sqlite_keeps_every_answered_charge_through_kill_9(
    start_server: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    server = start_sandbox(tmp_path, "--store", url)  # not the fixture's: this one dies by SIGKILL
    token = f"durable-{uuid.uuid4().hex}"
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with server.client(token=token) as client:
            while not stop.is_set():
                try:
                    response = client.post(API + "/charge", json={"amount": 1500, "currency": "USD"})
                except httpx.TransportError:
                    return  # the process is gone
                if response.status_code == 200:
                    answered.append(response.json()["id"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    while len(answered) < 300:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGKILL)
    server.wait_exit()
    stop.set()
    for worker in workers:
        worker.join()
    again = start_server("--store", url)
    with again.client(token=token) as client:
        listed = client.get(API + "/charges", params={"limit": 100}).json()
        stored = set()
        for offset in range(0, listed["total"], 100):
            page = client.get(API + "/charges", params={"limit": 100, "offset": offset}).json()
            stored |= {c["id"] for c in page["data"]}
    assert set(answered) <= stored
    assert len(stored) - len(answered) <= 4  # at most one committed, unanswered charge per client in flight


def test_sqlite_writes_reach_the_database_file_itself_soon(
    start_server: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    """A serving process checkpoints a moment after it commits, not only when the write-ahead log
    has grown to SQLite's 1000 pages: a copy of the database file alone, without its log (what
    `cp sandbox.db` takes), soon holds the charges just made."""
    server = start_server("--store", f"sqlite:///{tmp_path / 'copied.db'}")
    with server.client(token=f"copied-{uuid.uuid4().hex}") as client:
        made = {client.post(API + "/charge", json={"amount": 1500, "currency": "USD"}).json()["id"] for _ in range(30)}
    found: set[str] = set()
    deadline = time.monotonic() + 10
    while not made <= found and time.monotonic() < deadline:
        time.sleep(0.1)
        shutil.copyfile(tmp_path / "copied.db", tmp_path / "alone.db")  # the file only: no -wal beside it
        try:
            with contextlib.closing(sqlite3.connect(tmp_path / "alone.db")) as db:
                found = {charge_id for (charge_id,) in db.execute("SELECT id FROM charges")}
        except sqlite3.DatabaseError:  # copied halfway through a checkpoint: look again
            continue
        finally:
            for leftover in tmp_path.glob("alone.db*"):
                leftover.unlink()
    assert made <= found, f"{len(made - found)} of {len(made)} charges are only in the log"


def test_redis_keeps_everything_through_restarts_of_the_sandboxes(
    start_server: Callable[..., SandboxProcess], redis_url: str
) -> None:
    url = redis_url + "/12"
    token = f"restart-{uuid.uuid4().hex}"
    first = start_server("--store", url)
    with first.client(token=token) as client:
        made = [client.post(API + "/charge", json={"amount": 2000, "currency": "EUR"}).json() for _ in range(5)]
        refund = client.post(API + "/refund", json={"charge_id": made[0]["id"], "amount": 500})
        assert refund.status_code == 200
        assert client.post("/__sandbox/clock/advance", json={"seconds": 3600}).status_code == 200
    assert first.stop() == 0
    second = start_server("--store", url)
    with second.client(token=token) as client:
        listed = client.get(API + "/charges").json()
        assert {c["id"] for c in listed["data"]} == {c["id"] for c in made}
        assert client.get(f"{API}/charge/{made[0]['id']}").json()["amount_refunded"] == 500
        assert client.post("/__sandbox/clock/advance", json={"seconds": 0}).json()["offset_seconds"] == 3600


@pytest.fixture
def own_redis(tmp_path: Path, redis_url: str) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A redis-server of the test's own, which the test may stop and start again on the same port."""
    port = free_port()
    procs = [start_redis(port, tmp_path)]
    yield port, procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def test_a_lost_redis_is_a_503_and_the_sandbox_recovers(
    start_server: Callable[..., SandboxProcess], own_redis: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    port, procs = own_redis
    server = start_server("--store", f"redis://127.0.0.1:{port}/0", check_log=False)
    with server.client(token="lost") as client:
        assert client.post(API + "/charge", json={"amount": 100, "currency": "USD"}).status_code == 200
        procs[0].terminate()
        procs[0].wait(timeout=10)
        for answer in (
            client.post(API + "/charge", json={"amount": 100, "currency": "USD"}),
            client.get(API + "/charges"),
            client.get("/__sandbox/health"),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "store_unavailable"
        procs.append(start_redis(port, tmp_path))
        deadline = time.monotonic() + 15
        while client.get("/__sandbox/health").status_code != 200:
            assert time.monotonic() < deadline, "the sandbox did not recover"
            time.sleep(0.2)
        assert client.post(API + "/charge", json={"amount": 100, "currency": "USD"}).status_code == 200
    assert server.stop() == 0
    assert "Traceback" not in server.log()


def test_a_locked_sqlite_file_is_a_503_for_writes_and_the_sandbox_recovers(
    start_server: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    path = tmp_path / "locked.db"
    server = start_server("--store", f"sqlite:///{path}")
    with server.client(token="locked") as client:
        assert client.post(API + "/charge", json={"amount": 100, "currency": "USD"}).status_code == 200
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another program holding the file's write lock
        try:
            answer = client.post(API + "/charge", json={"amount": 100, "currency": "USD"})
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "store_unavailable"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.post(API + "/charge", json={"amount": 100, "currency": "USD"}).status_code == 200
        assert client.get(API + "/charges").json()["total"] == 2


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--workers", "2"), "needs a shared store"),
        (("--store", "postgres://x"), "not a store URL"),
        (("--store", "sqlite:///"), "not a store URL"),
        (("--store", "sqlite:////no/such/folder/x.db"), "cannot use"),
        (("--store", "redis://127.0.0.1:1/0"), "no Redis answers"),
    ],
)
def test_a_bad_store_stops_serve_with_one_line(flags: tuple[str, ...], said: str) -> None:
    result = run_cli("serve", "--port", str(free_port()), *flags)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert said in result.stderr.strip().splitlines()[-1], result.stderr  # after argparse's usage, if any

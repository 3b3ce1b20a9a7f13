"""`sandbox.Sandbox`: a real server for tests outside pytest's fixture, with the fixture's helpers.

Most tests share one module-wide `Sandbox`, each on a tenant of its own; those about starting and
stopping start their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import get_type_hints

import jwt
import pytest
from helpers import process_alive

from sandbox import JournalEntry, Sandbox, Tenant
from sandbox.control_client import ControlClient, ControlError
from sandbox.launcher import StartError, free_port

SECRET = "a-test-secret-of-at-least-32-bytes!"  # PyJWT warns about shorter HS256 keys
TEAPOT = "rules:\n  - {name: teapot, applies_to: charge, when: {amount: 4180}, then: {status: 402, error: {code: card_declined, message: I am a teapot.}}}\n"  # noqa: E501


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/__sandbox/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        assert time.monotonic() < deadline, f"sandbox {pid} is still running"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(log_dir=tmp_path_factory.mktemp("sandbox")) as sandbox:
        yield sandbox


@pytest.fixture
def tenant(shared: Sandbox) -> Iterator[Tenant]:
    view = shared.tenant(f"test-{uuid.uuid4().hex}")
    yield view
    view.close()


def test_a_started_sandbox_is_healthy_at_its_urls(shared: Sandbox) -> None:
    assert shared.url == f"http://127.0.0.1:{shared.port}"
    assert shared.base_url == shared.url + "/v1/payments"
    assert shared.running()
    assert _serving(shared.url)
    assert shared.token == "sandbox"
    assert shared.headers == {"Authorization": "Bearer sandbox"}


def test_the_helpers(tenant: Tenant) -> None:
    with tenant.client() as client:
        charge = client.post("/charge", json={"amount": 100202, "currency": "USD"}).json()
        assert charge["status"] == "pending"
        assert tenant.advance_clock(61)["offset_seconds"] == 61
        assert client.get(f"/charge/{charge['id']}").json()["status"] == "succeeded"
        [rule] = tenant.load_scenarios(TEAPOT)
        assert rule["name"] == "teapot"
        assert client.post("/charge", json={"amount": 4180, "currency": "EUR"}).status_code == 402
        ids = tenant.seed(count=3, seed=5)
        assert client.get("/charges").json()["total"] == 4, "the pending one and 3 seeded (a 402 stores none)"
        assert client.get(f"/charge/{ids[0]}").status_code == 200
    assert [e["status"] for e in tenant.requests()] == [200, 200, 402, 200, 200]
    assert [e["status"] for e in tenant.requests(method="POST", path="/charge")] == [200, 402]
    assert [e["status"] for e in tenant.requests(status=402)] == [402]
    tenant.reset()
    assert tenant.requests() == []
    with tenant.client() as client:
        assert client.post("/charge", json={"amount": 4180, "currency": "EUR"}).status_code == 200, "rules reset"


def test_tenants_are_isolated(shared: Sandbox, tenant: Tenant) -> None:
    other = shared.tenant(f"other-{uuid.uuid4().hex}")
    other.client().post("/charge", json={"amount": 1500, "currency": "USD"})
    assert tenant.requests() == []
    assert len(other.requests()) == 1


def test_requests_path_may_be_relative_full_or_a_url(tenant: Tenant) -> None:
    tenant.client().post("/charge", json={"amount": 1500, "currency": "USD"})
    for path in ("/charge", "charge", "/v1/payments/charge", tenant.base_url + "/charge"):
        [entry] = tenant.requests(path=path)
        assert entry["path"] == "/v1/payments/charge", path
    assert tenant.requests(path="/charges") == []


def test_assert_called_counts_and_returns_the_matches(tenant: Tenant) -> None:
    client = tenant.client()
    client.post("/charge", json={"amount": 1500, "currency": "USD"})
    client.post("/charge", json={"amount": 100005, "currency": "USD"})
    assert len(tenant.assert_called("POST", "/charge")) == 2
    assert len(tenant.assert_called("post", "/v1/payments/charge", count=2)) == 2
    [declined] = tenant.assert_called("POST", "charge", status=400)
    assert declined["scenario"] == "generic_decline"
    assert tenant.assert_called("GET", "/charges", count=0) == []


def test_assert_called_fails_with_every_call_listed_and_the_matches_marked(tenant: Tenant) -> None:
    client = tenant.client()
    client.post("/charge", json={"amount": 1500, "currency": "USD"})
    client.post("/charge", json={"amount": 100005, "currency": "USD"})
    client.get("/charges", params={"limit": 5})
    with pytest.raises(AssertionError) as failed:
        tenant.assert_called("POST", "/charge", count=2, status=200)
    assert str(failed.value) == (
        "expected POST /v1/payments/charge -> 200 2 times, it was called once.\n"
        "This tenant's API calls, oldest first ('>' marks a match):\n"
        "> POST /v1/payments/charge -> 200\n"
        "  POST /v1/payments/charge -> 400 [generic_decline]\n"
        "  GET /v1/payments/charges?limit=5 -> 200"
    )
    tenant.reset()
    with pytest.raises(AssertionError, match=r"expected GET /v1/payments/charges at least once, it was called 0 times"):
        tenant.assert_called("GET", "/charges")


def test_journal_entries_have_every_key_the_type_names(tenant: Tenant) -> None:
    tenant.client().post("/charge", json={"amount": 1500, "currency": "USD"})
    [entry] = tenant.requests()
    assert set(get_type_hints(JournalEntry)) <= set(entry)


def test_control_client_finds_the_root_from_either_url(shared: Sandbox) -> None:
    for given in (shared.url, shared.url + "/", shared.base_url, shared.base_url + "/"):
        found = ControlClient.find(given)
        assert (found.url, found.base_url) == (shared.url, shared.base_url), given
    with pytest.raises(ControlError, match="neither a sandbox's root nor its API"):
        ControlClient.find(shared.url + "/v1/other")
    with pytest.raises(ConnectionRefusedError):  # nothing listens there
        ControlClient.find(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match="not an http"):
        ControlClient("ftp://127.0.0.1")


def test_leaving_the_block_by_an_exception_stops_it(tmp_path: Path) -> None:
    started: list[Sandbox] = []
    with contextlib.suppress(RuntimeError), Sandbox(log_dir=tmp_path) as sandbox:
        started.append(sandbox)
        raise RuntimeError("boom")
    assert started == [sandbox]
    assert not process_alive(sandbox.pid)
    assert not _serving(sandbox.url)
    assert sandbox.stop() == 0, "a second stop changes nothing"


def test_clients_are_closed_when_it_stops(tmp_path: Path) -> None:
    with Sandbox(log_dir=tmp_path) as sandbox:
        clients = [sandbox.client(), sandbox.tenant("t").client()]
        async_client = sandbox.async_client()
    assert all(c.is_closed for c in clients)
    assert async_client.is_closed


SCRIPT = """
import sys, time
from sandbox import Sandbox
sandbox = Sandbox(log_dir=sys.argv[1])
print(sandbox.pid, sandbox.url, flush=True)
if sys.argv[2] == "sleep":
    time.sleep(120)
"""


@pytest.mark.parametrize("end", ["exit", "sigterm", "sigkill"])
def test_the_server_ends_with_the_script_that_started_it(tmp_path: Path, end: str) -> None:
    """At interpreter exit (atexit), and when the script is killed (Linux's parent-death signal)."""
    if end != "exit" and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    script = subprocess.Popen(
        [sys.executable, "-W", "error", "-c", SCRIPT, str(tmp_path), "exit" if end == "exit" else "sleep"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert script.stdout is not None
        pid, url = script.stdout.readline().split()
        assert _serving(url)
        if end != "exit":
            script.send_signal(signal.SIGTERM if end == "sigterm" else signal.SIGKILL)
        script.wait(timeout=60)
        _wait_gone(int(pid))
        if end == "exit":
            assert script.returncode == 0
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
        if script.stdout is not None:
            script.stdout.close()


def test_options_reach_the_server(tmp_path: Path) -> None:
    rules = tmp_path / "teapot.yaml"
    rules.write_text(TEAPOT)
    port = free_port()
    with Sandbox(port=port, scenarios=[rules], default_scenarios=False, control_token="ctl", log_dir=tmp_path) as sb:
        assert sb.port == port
        assert sb.url.endswith(f":{port}")
        with sb.client() as client:
            assert client.post("/charge", json={"amount": 4180, "currency": "EUR"}).status_code == 402
            assert client.post("/charge", json={"amount": 100005, "currency": "EUR"}).status_code == 200, "no pack"
        assert len(sb.requests()) == 2, "the helpers send the control token"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(sb.url + "/__sandbox/requests", timeout=5)
        assert refused.value.code == 401
        refused.value.close()
        assert "ctl" not in str(sb.process.proc.args), "secrets are not on the command line"


def test_jwt_secret_makes_the_token_a_signed_jwt(tmp_path: Path) -> None:
    with Sandbox(jwt_secret=SECRET, log_dir=tmp_path) as sandbox:
        assert jwt.decode(sandbox.token, SECRET, algorithms=["HS256"]) == {"sub": "sandbox"}
        assert sandbox.client().post("/charge", json={"amount": 1500, "currency": "USD"}).status_code == 200
        assert sandbox.tenant("opaque").client().get("/charges").status_code == 401
        alice = sandbox.tenant(jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"))
        assert alice.client().get("/charges").status_code == 200
        assert len(sandbox.requests()) == 1
        assert len(alice.requests()) == 1


def test_this_processs_settings_do_not_leak_into_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENTS_SANDBOX_NO_DEFAULT_SCENARIOS", "1")
    with Sandbox(log_dir=tmp_path) as sandbox:
        declined = sandbox.client().post("/charge", json={"amount": 100005, "currency": "USD"})
        assert declined.status_code == 400, "the built-in pack is loaded: what the constructor says counts"


def test_a_server_that_cannot_start_is_reported_and_nothing_is_left(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    applies_to: payout\n    then: {}\n")
    before = set(_servers_of_this_process())
    with pytest.raises(StartError, match='unknown rule kind "payout"'):
        Sandbox(scenarios=[bad], log_dir=tmp_path)
    assert set(_servers_of_this_process()) == before


def _servers_of_this_process() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()
                and b"serve" in (entry / "cmdline").read_bytes()
                and process_alive(int(entry.name))
            ):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids

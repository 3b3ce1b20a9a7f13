"""Seeded chaos and faults of one's own rules, through real servers: `probability` rules fire by
chance but reproducibly (the same seed and request order give the same outcomes, per tenant);
`--chaos PROFILE` loads a built-in profile after every other rule; a fault of a user's rule works on
refunds and with fail_first_attempt; a server that sends faults logs no error and exits 0.
"""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest
from conftest import API, Tenant

CHANCE = """\
rules:
  - name: sometimes_unavailable
    applies_to: charge
    when: {amount: {min: 1, max: 9999}}
    probability: 0.3
    then:
      status: 503
      error: {code: service_unavailable, message: Try again.}
  - name: sometimes_reset
    applies_to: charge
    when: {amount: {min: 1, max: 9999}}
    probability: 0.2
    then:
      fault: {kind: connection_reset, commit: false}
"""

OWN_FAULTS = """\
rules:
  - name: refund_cut_after_commit
    applies_to: refund
    when: {amount: 7001}
    then:
      fault: {kind: empty_response, commit: true}
  - name: reset_once
    applies_to: charge
    when: {amount: 7002}
    then:
      fail_first_attempt: true
      fault: {kind: connection_reset, commit: false}
  - name: quick_trickle
    applies_to: charge
    when: {amount: 7003}
    then:
      fault: {kind: slow_body, commit: true, bytes_per_second: 400}
"""


def _outcomes(base_url: str, count: int = 40) -> list[str]:
    """What a fresh tenant's `count` charges of 1500 met, in order: the rule's name, or "ok"."""
    tenant = Tenant(base_url)
    seen = []
    try:
        for _ in range(count):
            try:
                with httpx.Client(base_url=base_url, headers=tenant.http.headers, timeout=10) as client:
                    response = client.post(f"{API}/charge", json={"amount": 1500, "currency": "USD"})
                seen.append(response.headers.get("Sandbox-Scenario", "ok"))
            except httpx.ReadError:
                seen.append("reset")
    finally:
        tenant.close()
    return seen


@pytest.fixture
def chance_file(tmp_path):
    path = tmp_path / "chance.yaml"
    path.write_text(CHANCE)
    return path


def test_the_same_seed_gives_every_tenant_the_same_outcomes_in_every_run(spawn, chance_file):
    first = spawn("--scenarios", str(chance_file), "--chaos-seed", "7")
    one, two = _outcomes(first.base_url), _outcomes(first.base_url)
    first.stop()
    again = _outcomes(spawn("--scenarios", str(chance_file), "--chaos-seed", "7").base_url)
    other = _outcomes(spawn("--scenarios", str(chance_file), "--chaos-seed", "8").base_url)

    assert one == two == again
    assert {"ok", "sometimes_unavailable", "reset"} <= set(one)  # 40 draws at 30% and 20%
    assert other != one


def test_a_reset_tenant_starts_its_draws_again(spawn, chance_file):
    server = spawn("--scenarios", str(chance_file), "--chaos-seed", "3")
    tenant = Tenant(server.base_url)
    try:
        first = [_status(tenant) for _ in range(20)]
        assert tenant.http.post("/__sandbox/reset").status_code == 200
        again = [_status(tenant) for _ in range(20)]
    finally:
        tenant.close()

    assert first == again
    assert len(set(first)) > 1


def _status(tenant: Tenant) -> int:
    try:
        with httpx.Client(base_url=str(tenant.http.base_url), headers=tenant.http.headers, timeout=10) as client:
            return client.post(f"{API}/charge", json={"amount": 1500, "currency": "USD"}).status_code
    except httpx.ReadError:
        return 0


def test_a_chaos_profile_loads_after_every_other_rule_and_keeps_magic_amounts(spawn):
    server = spawn("--chaos", "bad-day", "--chaos-seed", "1")
    tenant = Tenant(server.base_url)
    try:
        rules = tenant.scenarios()
        declined = [tenant.charge(100005).json()["error"]["code"] for _ in range(30)]
        health = tenant.http.get("/__sandbox/health").json()
    finally:
        tenant.close()

    assert health["chaos"] == {"profile": "bad-day", "seed": 1}

    names = [rule["name"] for rule in rules]
    chaos = [rule for rule in rules if rule["name"].startswith("chaos_")]
    assert chaos
    assert names.index(chaos[0]["name"]) > names.index("generic_decline")
    assert all(0 < rule["probability"] < 1 for rule in chaos)
    assert all("bad-day.yaml:" in rule["source"] for rule in chaos)
    assert set(declined) == {"card_declined"}  # an exact magic amount is never left to chance


def test_an_unknown_chaos_profile_stops_the_server_naming_the_profiles(cli):
    done = cli("serve", "--chaos", "sunny-day")

    assert done.returncode == 2
    assert "'sunny-day'" in done.stderr
    assert "use one of bad-day, flaky-network" in done.stderr
    assert "Traceback" not in done.stderr


def test_faults_of_ones_own_rules_on_refunds_once_and_slowly_and_the_log_stays_clean(spawn, tmp_path):
    path = tmp_path / "own.yaml"
    path.write_text(OWN_FAULTS)
    server = spawn("--scenarios", str(path))
    tenant = Tenant(server.base_url)
    try:
        charge = tenant.charge(7001).json()
        with pytest.raises(httpx.RemoteProtocolError):
            _post(tenant, "/refund", {"charge_id": charge["id"]})
        refunded = tenant.get(charge["id"])["amount_refunded"]

        key = f"k-{uuid4()}"
        with pytest.raises(httpx.ReadError):
            _post(tenant, "/charge", {"amount": 7002, "currency": "USD"}, key)
        retry = _post(tenant, "/charge", {"amount": 7002, "currency": "USD"}, key)
        trickled = _post(tenant, "/charge", {"amount": 7003, "currency": "USD"})
    finally:
        tenant.close()
    code = server.stop()

    assert refunded == 7001  # stored before the connection was cut
    assert retry.status_code == 200
    assert retry.headers["Sandbox-Scenario"] == "reset_once"
    assert trickled.status_code == 200
    assert trickled.json()["amount"] == 7003
    assert code == 0
    log = server.stderr()
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log


def _post(tenant: Tenant, path: str, body: dict, key: str | None = None) -> httpx.Response:
    """One POST on a connection of its own (a fault closes it), closed whatever happens."""
    headers = {"Idempotency-Key": key} if key else {}
    with httpx.Client(base_url=str(tenant.http.base_url), headers=tenant.http.headers, timeout=10) as client:
        return client.post(f"{API}{path}", json=body, headers=headers)

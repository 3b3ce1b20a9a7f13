"""Every status the default scenario pack scripts is documented, and every scripted body validates.

The schemathesis run uses a server without the pack (its 5xx are on purpose, see
test_schemathesis.py); this covers the pack instead: for each rule the server lists under
/__sandbox/scenarios, make the request that triggers it and hold the answer to the contract.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import httpx
from conformance_support import OPERATIONS, documented_responses, response_problems
from sandbox_server import SandboxProcess

API = "/v1/payments"


def _status(rule: dict[str, Any]) -> int:
    then = rule["then"]
    return int(then.get("status", 400 if then.get("error") else 200))


def _rules(server: SandboxProcess) -> list[dict[str, Any]]:
    """The pack's rules that answer (a network fault breaks the answer on purpose: tests/process/test_faults.py)."""
    response = httpx.get(f"{server.base_url}/__sandbox/scenarios", trust_env=False)
    assert response.status_code == 200, response.text
    rules: list[dict[str, Any]] = response.json()["rules"]
    return [rule for rule in rules if "fault" not in rule["then"]]


def test_every_scripted_status_is_documented(default_server: SandboxProcess) -> None:
    rules = _rules(default_server)
    assert len(rules) >= 10, rules  # the built-in pack is loaded
    undocumented = [
        (rule["name"], _status(rule))
        for rule in rules
        if str(_status(rule)) not in documented_responses(*OPERATIONS[rule["applies_to"]])
    ]
    assert undocumented == []


def _trigger(server: SandboxProcess, rule: dict[str, Any]) -> list[tuple[str, str, httpx.Response]]:
    """Make the request(s) that trigger `rule`, as a fresh tenant; (path, method, response) each."""
    when = rule.get("when", {})
    amount = when.get("amount")
    if not isinstance(amount, int):
        amount = (amount or {}).get("min", 1500)
    body: dict[str, Any] = {"amount": amount, "currency": when.get("currency", "USD")}
    metadata = dict(when.get("metadata", {}))
    if not when:
        metadata["sandbox_scenario"] = rule["name"]
    headers = {"Authorization": f"Bearer scripted-{uuid4().hex}"}
    exchanges = []
    with httpx.Client(base_url=server.base_url + API, headers=headers, timeout=30, trust_env=False) as client:
        if rule["applies_to"] == "charge":
            body["metadata"] = metadata
            first = client.post("/charge", json=body)
            exchanges.append(("/charge", "post", first))
            if rule["then"].get("fail_first_attempt"):
                exchanges.append(("/charge", "post", client.post("/charge", json=body)))
        else:
            charge = client.post("/charge", json=body)
            assert charge.status_code == 200, charge.text
            refund = {"charge_id": charge.json()["id"], "metadata": metadata}
            exchanges.append(("/refund", "post", client.post("/refund", json=refund)))
    return exchanges


def test_every_scripted_response_keeps_the_contract(default_server: SandboxProcess) -> None:
    rules = _rules(default_server)
    # Together, so that the scripted 3 s delay of `slow` is waited out once.
    with ThreadPoolExecutor(max_workers=len(rules)) as pool:
        results = list(pool.map(lambda rule: (rule, _trigger(default_server, rule)), rules))
    problems = []
    for rule, exchanges in results:
        first = exchanges[0][2]
        if first.status_code != _status(rule):
            problems.append(f"{rule['name']}: scripted {_status(rule)}, got {first.status_code} {first.text[:200]}")
        if first.headers.get("Sandbox-Scenario") != rule["name"]:
            problems.append(f"{rule['name']}: Sandbox-Scenario header is {first.headers.get('Sandbox-Scenario')!r}")
        for path, method, response in exchanges:
            problems += [f"{rule['name']}: {p}" for p in response_problems(path, method, response)]
        if rule["then"].get("fail_first_attempt"):
            retry = exchanges[1][2]
            if retry.status_code != 200:
                problems.append(f"{rule['name']}: the retry got {retry.status_code}, expected 200")
    assert problems == []

"""Default pack, 100408 `slow`: the charge succeeds after a scripted 3 s delay."""

from __future__ import annotations

import time

SCRIPTED_DELAY = 3.0


def test_slow_charge_succeeds_after_the_scripted_delay(tenant):
    started = time.monotonic()
    response = tenant.charge(100408)
    elapsed = time.monotonic() - started

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.headers["Sandbox-Scenario"] == "slow"
    assert elapsed >= SCRIPTED_DELAY  # the scripted delay is behaviour: a lower bound, not a perf limit
    assert tenant.ids("succeeded") == [response.json()["id"]]

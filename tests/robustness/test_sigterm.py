"""SIGTERM while requests are in flight: each of them finishes with its answer, then the process
exits 0 (uvicorn's graceful shutdown; the CLI turns the re-raised signal into exit code 0).
Shutting down ends scripted delays at once, so even a delay longer than uvicorn's 30 s grace
period is answered (second test) instead of being cut off.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx
from sandbox_proc import run_async
from sandbox_server import API, SandboxProcess

SCRIPTED_DELAY = 3.0
SLOW = 100408
IN_FLIGHT = 20
KEYS = range(IN_FLIGHT)


def test_sigterm_lets_in_flight_requests_finish_then_exits_0(start_server: Callable[..., SandboxProcess]) -> None:
    server = start_server()
    token = f"sigterm-{uuid4().hex}"

    async def scenario() -> tuple[list[tuple[httpx.Response, float]], int]:
        async with httpx.AsyncClient(
            base_url=server.base_url + API,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60.0,
            trust_env=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
        ) as client:

            def body(n: int) -> dict[str, Any]:
                return {"amount": SLOW, "currency": "USD", "description": f"in flight {n}"}

            async def slow_charge(n: int) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                response = await client.post("/charge", json=body(n), headers={"Idempotency-Key": f"{token}-{n}"})
                return response, time.monotonic() - started

            # Two identical requests per key: whichever reaches the server second is told at once
            # that the other is in flight (409). Once every key has its 409, all 20 are in flight.
            pairs = {n: (asyncio.create_task(slow_charge(n)), asyncio.create_task(slow_charge(n))) for n in KEYS}
            losers: dict[int, asyncio.Task[tuple[httpx.Response, float]]] = {}
            while len(losers) < IN_FLIGHT:
                undecided = [task for n, pair in pairs.items() if n not in losers for task in pair]
                done, _ = await asyncio.wait(undecided, return_when=asyncio.FIRST_COMPLETED)
                for n, pair in pairs.items():
                    for task in pair:
                        if task in done:
                            response, _ = task.result()
                            assert response.status_code == 409, response.text
                            losers[n] = task
            in_flight = [next(task for task in pairs[n] if task is not losers[n]) for n in KEYS]
            assert not any(task.done() for task in in_flight), "a slow request finished before SIGTERM"
            os.kill(server.pid, signal.SIGTERM)
            results = await asyncio.gather(*in_flight)
            return results, server.wait_exit()

    results, exit_code = run_async(scenario)

    assert [r.status_code for r, _ in results] == [200] * IN_FLIGHT, [r.text for r, _ in results]
    assert all(r.json()["status"] == "succeeded" for r, _ in results)
    assert len({r.json()["id"] for r, _ in results}) == IN_FLIGHT
    assert exit_code == 0, server.log()
    assert "Traceback" not in server.log()


def test_sigterm_during_a_delay_longer_than_the_grace_period_ends_the_delay_and_answers(
    start_server: Callable[..., SandboxProcess],
) -> None:
    server = start_server(check_log=False)
    token = f"long-delay-{uuid4().hex}"
    rule = (
        "rules:\n  - name: very_slow\n    applies_to: charge\n    when: {amount: 4242}\n    then: {delay_ms: 45000}\n"
    )

    async def scenario() -> tuple[httpx.Response, float]:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=90.0, trust_env=False
        ) as client:
            loaded = await client.post(
                "/__sandbox/scenarios", content=rule, headers={"Content-Type": "application/yaml"}
            )
            assert loaded.status_code == 200, loaded.text
            body, key = {"amount": 4242, "currency": "USD"}, f"{token}-key"

            def post() -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(client.post(f"{API}/charge", json=body, headers={"Idempotency-Key": key}))

            first, second = post(), post()  # the second to arrive gets 409: the other is in flight
            done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
            assert [task.result().status_code for task in done] == [409]
            os.kill(server.pid, signal.SIGTERM)
            signalled = time.monotonic()
            answer = await (second if first in done else first)
            return answer, time.monotonic() - signalled

    answer, after_signal = run_async(scenario)
    exit_code = server.wait_exit(timeout=60)

    assert exit_code == 0
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "succeeded"
    assert after_signal < 45, "the 45 s scripted delay ran on after SIGTERM"
    assert "Traceback" not in server.log(), server.log()

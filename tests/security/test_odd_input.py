"""Odd input gets a 4xx in the envelope (or exit 2 at start), never a 500 or a traceback: numbers
written with other digits, dates past year 9999, a --spec that is not OpenAPI. Through a real server
and the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sandbox_server import SandboxProcess, run_cli

# Each is a number to `str.isdigit()` or `int()`, and none is one a client means.
NOT_NUMBERS = ["²", "٣", "1" * 5000, "+5", "1.0", " 5", "5 ", "0x10", "1_000", "١٢"]


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    with sandbox.client(token=f"odd-{uuid.uuid4().hex}") as made:
        assert made.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"}).status_code == 200
        yield made


def assert_400(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "parameter_invalid"


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_numbers_in_query_strings_are_ascii_digits_only(client: httpx.Client, text: str) -> None:
    assert_400(client.get("/__sandbox/requests", params={"status": text}))
    assert_400(client.get("/v1/payments/charges", params={"limit": text}))
    assert_400(client.get("/v1/payments/charges", params={"offset": text}))


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_numbers_in_dashboard_forms_are_ascii_digits_only(
    sandbox: SandboxProcess, client: httpx.Client, text: str
) -> None:
    key = client.get("/__sandbox/tenants").json()["tenants"][0]["id"]
    page = f"/__sandbox/ui/tenants/{key}"
    form = {"confirmed": "yes"}
    assert_400(client.post(page + "/seed", data={**form, "count": text}))
    assert_400(client.post(page + "/seed", data={**form, "count": "2", "seed": text}))
    assert_400(client.post(page + "/clock", data={**form, "seconds": text}))
    assert client.get("/v1/payments/charges").json()["total"] == 1  # nothing seeded


@pytest.mark.parametrize("text", ["²", "٣", "+5", "1" * 5000])
def test_numbers_in_flags_are_ascii_digits_only(text: str) -> None:
    for flag in ("--port", "--journal-size", "--max-tenants"):
        result = run_cli("serve", flag, text)
        assert result.returncode == 2, (flag, result.stderr)
        assert "Traceback" not in result.stderr
        assert flag in result.stderr


def test_the_clock_cannot_pass_the_year_9999(client: httpx.Client) -> None:
    ten_years = 10 * 365 * 24 * 3600
    moved = 0
    while True:
        response = client.post("/__sandbox/clock/advance", json={"seconds": ten_years})
        if response.status_code != 200:
            break
        moved += 1
        assert response.json()["now"] < "9999-12-31T23:59:60Z"
        assert moved < 800, "the clock kept moving past year 9999"
    assert_400(response)
    assert "9999-12-31" in response.json()["error"]["message"]
    made = client.post("/v1/payments/charge", json={"amount": 1500, "currency": "USD"})
    assert made.status_code == 200
    assert made.json()["created_at"].startswith("99")
    assert client.get("/v1/payments/charges").status_code == 200


@pytest.mark.parametrize("seconds", [float("inf"), -1, True, "60", None, 10 * 365 * 24 * 3600 + 1])
def test_clock_advance_takes_a_bounded_number(client: httpx.Client, seconds: object) -> None:
    body = b'{"seconds": Infinity}' if seconds == float("inf") else None
    if body is not None:
        response = client.post("/__sandbox/clock/advance", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        return
    assert_400(client.post("/__sandbox/clock/advance", json={"seconds": seconds}))


@pytest.mark.parametrize(
    "document",
    ['{"hello": "world"}', "[1, 2]", '"openapi"', '{"openapi": 3}', '{"openapi": "2.0", "paths": {}}', "{}"],
)
def test_a_spec_that_is_not_openapi_stops_serve_with_one_line(tmp_path: Path, document: str) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(document)
    result = run_cli("serve", "--port", "1", "--spec", str(spec))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(spec) in lines[0]
    assert "OpenAPI" in lines[0]

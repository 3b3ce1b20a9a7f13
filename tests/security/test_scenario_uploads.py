"""Hostile scenario uploads (POST /__sandbox/scenarios) get a 400 `invalid_scenarios` naming the
line and the fix, never a 500, a hang or a dead server; big honest uploads are taken. Through one
real `payments-sandbox serve` for the module (the `sandbox` fixture: at teardown it must exit 0
on SIGTERM with no traceback in its log), which must answer its health check after each upload.
"""

from __future__ import annotations

import itertools
import re
import string
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from sandbox_server import SandboxProcess

YAML = {"Content-Type": "application/yaml"}
# Where an upload's message points: `request:<tenant>:<line>` or `...:<line>:<column>`, then ": ".
AT_A_LINE = re.compile(r"^request:[^:]+:(\d+)(:\d+)?: ")


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[httpx.Client]:
    with sandbox.client(token=f"uploader-{uuid.uuid4().hex}") as made:
        yield made
    assert sandbox.healthy(), "the server stopped answering after the upload"


def upload(client: httpx.Client, document: str) -> httpx.Response:
    return client.post("/__sandbox/scenarios", content=document.encode(), headers=YAML)


def refused(response: httpx.Response, line: int | None, *says: str) -> str:
    """The message of a 400 invalid_scenarios at `line` (None: any line) holding each of `says`."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_scenarios"
    message: str = error["message"]
    where = AT_A_LINE.match(message)
    assert where is not None, message
    assert line is None or int(where.group(1)) == line, message
    for needed in says:
        assert needed in message, message
    return message


def one_rule(then: str, when: str = "{amount: 4242}") -> str:
    return f"rules:\n  - name: hostile\n    applies_to: charge\n    when: {when}\n    then: {then}\n"


NESTED = {
    "500 nested lists": ("rules: " + "[" * 500 + "]" * 500 + "\n", 1),
    "500 nested mappings": ("rules:\n" + "".join("  " * level + f"k{level}:\n" for level in range(1, 501)), 17),
    "500 nested mappings in a rule": (
        "rules:\n  - name: deep\n    applies_to: charge\n    then:\n      headers: " + "{a: " * 500 + "x" + "}" * 500,
        5,
    ),
    "200,000 nested lists": ("rules: " + "[" * 200_000 + "]" * 200_000 + "\n", 1),
}


@pytest.mark.parametrize(("document", "line"), NESTED.values(), ids=NESTED.keys())
def test_deep_nesting_is_refused_at_its_line(client: httpx.Client, document: str, line: int) -> None:
    message = refused(upload(client, document), line)

    assert "nest" in message


@pytest.mark.parametrize(
    ("then", "line", "says"),
    [
        ('{headers: {X-Note: "café €"}}', 5, ("X-Note", "U+20AC", "Latin-1")),
        ('{headers: {X-Note: "ok\\r\\nSet-Cookie: session=stolen"}}', 5, ("line break",)),
        ('{headers: {Content-Type: "text/html"}}', 5, ("Content-Type", "set by the sandbox")),
        ('{headers: {Transfer-Encoding: "chunked"}}', 5, ("Transfer-Encoding", "remove it")),
        ('{headers: {"Bad Name": "1"}}', 5, ("HTTP token",)),
        ("{headers: {1: x}}", 5, ("key 1", "quote the key")),
        ("{status: 200, yes: 1}", 5, ("key yes", "true or false", "quote the key")),
        ("{charge: pending, settle: {after_seconds: .inf, to: succeeded}}", 5, ("after_seconds", "Infinity")),
        ("{charge: pending, settle: {after_seconds: .nan, to: succeeded}}", 5, ("after_seconds", "NaN")),
        ("{status: true}", 5, ('true is not of type "integer"',)),
    ],
    ids=["not latin-1", "CR LF", "own header", "framing header", "bad name", "key 1", "key yes", "inf", "nan", "true"],
)
def test_a_rule_the_server_could_not_honour_is_refused_at_its_line(
    client: httpx.Client, then: str, line: int, says: tuple[str, ...]
) -> None:
    refused(upload(client, one_rule(then)), line, *says)

    charged = client.post("/v1/payments/charge", json={"amount": 4242, "currency": "USD"})
    assert charged.status_code == 200, charged.text  # the rule was not loaded
    assert "Sandbox-Scenario" not in charged.headers
    assert client.get(f"/v1/payments/charge/{charged.json()['id']}").json()["status"] == "succeeded"


def test_any_token_names_a_header_and_latin1_text_fills_it(client: httpx.Client) -> None:
    # The old name pattern allowed letters, digits and - only; RFC 9110 allows any token.
    taken = upload(client, one_rule('{headers: {X-Note_v2.1: "café", X~Tab: "a\\tb"}}'))
    assert taken.status_code == 200, taken.text

    charged = client.post("/v1/payments/charge", json={"amount": 4242, "currency": "USD"})

    assert charged.status_code == 200, charged.text
    assert charged.headers["Sandbox-Scenario"] == "hostile"
    assert charged.headers["X-Note_v2.1"] == "café"
    assert charged.headers["X~Tab"] == "a\tb"


CURRENCIES = ['"' + "".join(c) + '"' for c in itertools.product(string.ascii_uppercase, repeat=3)]


def many(whens: list[str]) -> str:
    rules = (f"  - {{name: r{n}, applies_to: charge, when: {when}, then: {{}}}}\n" for n, when in enumerate(whens))
    return "rules:\n" + "".join(rules)


SHAPES: dict[str, Callable[[int], str]] = {
    "distinct ranges": lambda n: f"{{amount: {{min: {10 * n + 1}, max: {10 * n + 10}}}}}",
    "one amount, many currencies": lambda n: f"{{amount: 5000, currency: {CURRENCIES[n]}}}",
    "one range, many metadata values": lambda n: f"{{amount: {{max: 999}}, metadata: {{p: v{n}}}}}",
}  # each document under the 1 MiB body limit


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_ten_thousand_rules_are_taken_and_an_overlap_among_them_named(
    client: httpx.Client, shape: Callable[[int], str]
) -> None:
    whens = [shape(n) for n in range(10_000)]

    taken = upload(client, many(whens))
    assert taken.status_code == 200, taken.text[:500]
    assert len(taken.json()["rules"]) == 10_000

    whens[-1] = whens[100]
    refused(upload(client, many(whens)), 10_001, '"r9999" overlaps rule "r100"', ":102)", "disjoint")


def test_rules_too_costly_to_tell_apart_are_refused_clearly(client: httpx.Client) -> None:
    # Two halves of an 80 x 80 checkerboard of metadata (a, b), each with a key of its own: no two
    # rules overlap, but no one key tells them apart (see tests/unit/test_scenario_overlaps.py), and
    # telling the 3,200 of the second half from the first takes 40 comparisons each.
    cells = [(i, j) for i in range(80) for j in range(80)]
    first = [f"{{amount: {{max: 500}}, metadata: {{a: a{i}, b: b{j}, c: x}}}}" for i, j in cells if (i + j) % 2]
    second = [f"{{amount: {{max: 500}}, metadata: {{a: a{i}, b: b{j}, d: x}}}}" for i, j in cells if not (i + j) % 2]

    message = refused(upload(client, many(first + second)), None, "too many rules over the same amounts")

    assert "comparisons" in message
    assert "own amount ranges" in message


def test_more_than_ten_thousand_rules_in_one_upload_are_refused(client: httpx.Client) -> None:
    document = many([f"{{amount: {100 + n}}}" for n in range(10_001)])

    refused(upload(client, document), 10_002, "more than 10000 rules")

"""parse_rules on one rule at a time: what it refuses, at which line, and with which fix.

Each case is a small scenario document and either the message parse_rules must raise (its start
`<source>:<line>[:<col>]` and words it must hold) or what the rule it builds must hold. The cases
are the ones the hardening issue lists: header names and values, keys that YAML reads as numbers,
booleans or null, numbers that YAML reads as infinite or NaN, and messages that quote values as
JSON rather than as Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sandbox.errors import ConfigError
from sandbox.scenarios import MAX_SETTLE_SECONDS, parse_rules

SOURCE = "my.yaml"


def document(then: str, when: str = "{amount: 5000}") -> str:
    """A one-rule document; `then` is the text after `then:` (a flow mapping or an indented block)."""
    return f"rules:\n  - name: r\n    applies_to: charge\n    when: {when}\n    then: {then}\n"


@dataclass(frozen=True)
class Refused:
    text: str
    where: str  # the message starts with SOURCE + where + ": "
    says: tuple[str, ...]  # and holds each of these
    never: tuple[str, ...] = ()  # and none of these


REFUSED = {
    # Header names: HTTP tokens only, none the server or HTTP itself owns, case-insensitively.
    "header value not latin-1": Refused(
        document('{headers: {X-Note: "café €"}}'), ":5", ("X-Note", "€", "U+20AC", "Latin-1")
    ),
    "header value with CR LF": Refused(
        document('{headers: {X-Note: "a\\r\\nSet-Cookie: s=1"}}'), ":5", ("X-Note", "line break")
    ),
    "header value with a control character": Refused(
        document('{headers: {X-Note: "a\\u0007b"}}'), ":5", ("X-Note", "U+0007")
    ),
    "header value with C1 control": Refused(document('{headers: {X-Note: "a\\u0085b"}}'), ":5", ("U+0085",)),
    "header value padded": Refused(document('{headers: {X-Note: " a"}}'), ":5", ("whitespace", "remove")),
    "header name with a space": Refused(document('{headers: {"X Note": "1"}}'), ":5", ('"X Note"', "HTTP token")),
    "header name with a newline": Refused(document('{headers: {"X-Note\\n": "1"}}'), ":5", ("HTTP token",)),
    "header name with a colon": Refused(document('{headers: {"X:Note": "1"}}'), ":5", ("HTTP token",)),
    "header name a number": Refused(document("{headers: {1: x}}"), ":5:", ("key 1", "number", 'quote the key: "1"')),
    "header value a number": Refused(document("{headers: {Retry-After: 1}}"), ":5", ("1", '"string"', "quote it")),
    "content-length": Refused(document('{headers: {content-LENGTH: "1"}}'), ":5", ("content-LENGTH", "remove it")),
    "transfer-encoding": Refused(document('{headers: {Transfer-Encoding: "chunked"}}'), ":5", ("Transfer-Encoding",)),
    "connection": Refused(document('{headers: {Connection: "close"}}'), ":5", ("Connection",)),
    "keep-alive": Refused(document('{headers: {Keep-Alive: "5"}}'), ":5", ("Keep-Alive",)),
    "proxy-connection": Refused(document('{headers: {Proxy-Connection: "x"}}'), ":5", ("Proxy-Connection",)),
    "te": Refused(document('{headers: {TE: "trailers"}}'), ":5", ("TE",)),
    "trailer": Refused(document('{headers: {Trailer: "x"}}'), ":5", ("Trailer",)),
    "upgrade": Refused(document('{headers: {Upgrade: "h2c"}}'), ":5", ("Upgrade",)),
    "proxy-authenticate": Refused(document('{headers: {Proxy-Authenticate: "x"}}'), ":5", ("Proxy-Authenticate",)),
    "proxy-authorization": Refused(document('{headers: {proxy-authorization: "x"}}'), ":5", ("proxy-authorization",)),
    "content-type": Refused(document('{headers: {Content-Type: "text/plain"}}'), ":5", ("set by the sandbox",)),
    "request-id": Refused(document('{headers: {request-id: "x"}}'), ":5", ("set by the sandbox",)),
    "sandbox-scenario": Refused(document('{headers: {SANDBOX-SCENARIO: "x"}}'), ":5", ("set by the sandbox",)),
    "idempotent-replayed": Refused(document('{headers: {Idempotent-Replayed: "x"}}'), ":5", ("set by the sandbox",)),
    # Every key anywhere is a string: YAML reads these as a number, a boolean or null.
    "key 1 in then": Refused(document("\n      status: 200\n      1: x"), ":7:7", ("key 1", 'quote the key: "1"')),
    "key yes": Refused(document("{yes: 1}"), ":5:12", ("key yes", "true or false", '"yes"')),
    "key on": Refused(document("{on: 1}"), ":5:12", ("key on", "true or false")),
    "key null": Refused(document("{null: 1}"), ":5:12", ("key null", "null", '"null"')),
    "key ~": Refused(document("{~: 1}"), ":5:12", ("null",)),
    "key 1.5": Refused(document("{1.5: 1}"), ":5:12", ("number",)),
    "top-level key 1": Refused("1: x\nrules: []\n", ":1:1", ("key 1", "quote")),
    "metadata key yes": Refused(
        document("{}", when="{metadata: {yes: web}}"), ":4:", ("key yes", "true or false", "quote the key")
    ),
    "metadata value a number": Refused(
        document("{}", when="{metadata: {plan: 1}}"), ":4", ("when.metadata.plan", '"string"', "quote it")
    ),
    "metadata value a date": Refused(
        document("{}", when="{metadata: {since: 2024-01-01}}"), ":4", ("2024-01-01", "date", "quote it")
    ),
    "metadata value null": Refused(document("{}", when="{metadata: {plan: }}"), ":4", ("null", "quote it")),
    "metadata key too long": Refused(document("{}", when="{metadata: {" + "k" * 41 + ": x}}"), ":4", ("40",)),
    "repeated key": Refused(document("{status: 200, status: 201}"), ":5:", ('"status"', "twice", "remove one")),
    "a key that is a list": Refused(document("{[1]: 2}"), ":5:", ("key must be text",)),
    # Numbers YAML makes infinite or NaN, and numbers too long to read.
    "settle after .inf": Refused(
        document("{charge: pending, settle: {after_seconds: .inf, to: succeeded}}"), ":5", ("Infinity", "315360000")
    ),
    "settle after .nan": Refused(
        document("{charge: pending, settle: {after_seconds: .nan, to: succeeded}}"), ":5", ("NaN", "ten years")
    ),
    "settle after 1e400": Refused(
        document("{charge: pending, settle: {after_seconds: 1.0e+400, to: succeeded}}"), ":5", ("Infinity",)
    ),
    "settle after ten years and a second": Refused(
        document(f"{{charge: pending, settle: {{after_seconds: {MAX_SETTLE_SECONDS + 1}, to: succeeded}}}}"),
        ":5",
        ("315360001", "315360000"),
    ),
    "delay_ms .inf": Refused(document("{delay_ms: .inf}"), ":5", ("delay_ms", "Infinity", '"integer"')),
    "delay_ms .nan": Refused(document("{delay_ms: .nan}"), ":5", ("NaN",)),
    "status .nan": Refused(document("{status: .nan}"), ":5", ("status", "NaN")),
    "status -.inf": Refused(document("{status: -.inf}"), ":5", ("-Infinity",)),
    "amount .inf": Refused(document("{}", when="{amount: .inf}"), ":4", ("Infinity",)),
    "amount max .nan": Refused(document("{}", when="{amount: {min: 1, max: .nan}}"), ":4", ("NaN",)),
    "an amount of 5000 digits": Refused(
        document("{}", when="{amount: " + "9" * 5000 + "}"), ":4:", ("too many digits",)
    ),
    # Messages quote JSON, not Python.
    "retryable 1": Refused(
        document("{status: 402, error: {code: x, message: m}, retryable: 1, charge: failed}"),
        ":5",
        ('retryable: 1 is not of type "boolean"',),
        ("'boolean'",),
    ),
    "status true": Refused(document("{status: true}"), ":5", ('status: true is not of type "integer"',), ("True",)),
    "status text": Refused(document("{status: text}"), ":5", ('"text" is not of type "integer"',), ("'text'",)),
    "retryable null": Refused(
        document("{status: 402, error: {code: x, message: m}, retryable: null, charge: failed}"),
        ":5",
        ("null is not of type",),
        ("None",),
    ),
    "unknown key": Refused(document("{colour: red}"), ":5", ('unknown key "colour"', "allowed keys"), ("'colour'",)),
    "missing then": Refused("rules:\n  - name: r\n    applies_to: charge\n", ":2", ('"then" is missing',), ("'then'",)),
    "a name with a newline": Refused(
        'rules:\n  - name: "r\\n"\n    applies_to: charge\n    then: {}\n', ":2", ("line break",)
    ),
    "a currency with a newline": Refused(document("{}", when='{currency: "USD\\n"}'), ":4", ("line break",)),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_rule_is_refused_at_its_line_with_the_fix(case: Refused) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_rules(case.text, SOURCE)

    message = str(raised.value)
    assert message.startswith(SOURCE + case.where), message
    assert "\n" not in message
    for needed in case.says:
        assert needed in message, message
    for banned in case.never:
        assert banned not in message, message


def test_headers_a_response_can_carry_are_kept() -> None:
    # Any RFC 9110 token is a name (the old pattern allowed letters, digits and - only); Latin-1
    # letters and tabs inside a value are fine on the wire.
    kept = {
        '{headers: {X-Review: "1"}}': ("X-Review", "1"),
        '{headers: {"X!#$%&\'*+.^_`|~1": ok}}': ("X!#$%&'*+.^_`|~1", "ok"),
        '{headers: {X-Note: "café"}}': ("X-Note", "café"),
        '{headers: {X-Note: "a\\tb"}}': ("X-Note", "a\tb"),
        '{headers: {X-Empty: ""}}': ("X-Empty", ""),
    }
    for then, header in kept.items():
        (rule,) = parse_rules(document(then), SOURCE)
        assert rule.headers == (header,), then


def test_whole_numbers_written_with_a_point_become_ints() -> None:
    (rule,) = parse_rules(document("{status: 201.0, delay_ms: 10.0}", when="{amount: 5000.0}"), SOURCE)

    assert (rule.status, rule.delay_ms, rule.amount_min, rule.amount_max) == (201, 10, 5000, 5000)
    assert all(type(n) is int for n in (rule.status, rule.delay_ms, rule.amount_min, rule.amount_max))


def test_ten_years_is_the_longest_settlement() -> None:
    def settling_after(seconds: object) -> str:
        return document(f"{{charge: pending, settle: {{after_seconds: {seconds}, to: succeeded}}}}")

    (rule,) = parse_rules(settling_after(MAX_SETTLE_SECONDS), SOURCE)
    assert rule.settle_after == MAX_SETTLE_SECONDS
    with pytest.raises(ConfigError, match="ten years"):
        parse_rules(settling_after(MAX_SETTLE_SECONDS + 0.5), SOURCE, check_schema=False)


def test_the_built_in_pack_skips_the_schema_but_not_the_settlement_check() -> None:
    text = document("{charge: pending, settle: {after_seconds: .nan, to: succeeded}}")

    with pytest.raises(ConfigError, match=r"^my\.yaml:5: .*after_seconds: NaN"):
        parse_rules(text, SOURCE, check_schema=False)


def test_the_built_in_pack_skips_the_schema_but_not_the_header_check() -> None:
    with pytest.raises(ConfigError, match=r"^my\.yaml:5: .*U\+20AC"):
        parse_rules(document('{headers: {X-Note: "€"}}'), SOURCE, check_schema=False)

"""The overlap check: exactly the pairs the old every-pair comparison found, without comparing
every pair; 10,000-rule documents of every shape are checked, and a contrived one that would need
too many comparisons is refused with a clear error instead of freezing the server.

No test here times anything; the timeout marks only turn a freeze (the old check spent minutes on
these documents) into a failure instead of a stalled run.
"""

from __future__ import annotations

import itertools
import json
import string
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.errors import ConfigError
from sandbox.scenario_overlaps import check_overlaps
from sandbox.scenarios import MAX_RULES, parse_rules

SOURCE = "big.yaml"
FREEZE = pytest.mark.timeout(120)


# Quoted: YAML reads some three-letter words (YES, OFF) as booleans.
CURRENCIES = ['"' + "".join(letters) + '"' for letters in itertools.product(string.ascii_uppercase, repeat=3)]


def rule(n: int, when: str) -> str:
    return f"  - {{name: r{n}, applies_to: charge, when: {when}, then: {{}}}}\n"


# Documents of MAX_RULES rules, none overlapping another; the line of rule n is n + 2.
SHAPES: dict[str, Callable[[int], str]] = {
    "distinct exact amounts": lambda n: f"{{amount: {1000 + n}}}",
    "distinct ranges": lambda n: f"{{amount: {{min: {10 * n + 1}, max: {10 * n + 10}}}}}",
    "one amount, many currencies": lambda n: f"{{amount: 5000, currency: {CURRENCIES[n]}}}",
    "one range, many metadata values": lambda n: f"{{amount: {{min: 1, max: 1000}}, metadata: {{plan: p{n}}}}}",
    "one range, two keys on a grid": lambda n: (
        f"{{amount: {{max: 1000}}, metadata: {{a: a{n // 100}, b: b{n % 100}}}}}"
    ),
    "open ranges by currency": lambda n: f"{{amount: {{min: {n + 1}}}, currency: {CURRENCIES[n]}}}",
}


def document(whens: list[str]) -> str:
    return "rules:\n" + "".join(rule(n, when) for n, when in enumerate(whens))


@FREEZE
def test_ten_thousand_rules_that_do_not_overlap_are_accepted_whatever_their_shape() -> None:
    for name, shape in SHAPES.items():
        rules = parse_rules(document([shape(n) for n in range(MAX_RULES)]), SOURCE)

        assert len(rules) == MAX_RULES, name
        assert rules[-1].source == f"{SOURCE}:{MAX_RULES + 1}", name


@FREEZE
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_one_overlap_among_ten_thousand_rules_is_found_and_both_rules_named(shape: Callable[[int], str]) -> None:
    whens = [shape(n) for n in range(MAX_RULES - 1)]
    whens.insert(MAX_RULES // 2, whens[-1])  # a copy of the last rule's `when`, in the middle

    with pytest.raises(ConfigError) as raised:
        parse_rules(document(whens), SOURCE)

    copy, last = MAX_RULES // 2, MAX_RULES - 1
    message = str(raised.value)
    assert message.startswith(f'{SOURCE}:{last + 2}: rule "r{last}" overlaps rule "r{copy}" ({SOURCE}:{copy + 2})')
    assert "disjoint" in message


@FREEZE
def test_a_document_needing_too_many_comparisons_is_refused_clearly() -> None:
    # Over one range, 5,000 rules keyed by (a, b, c) and 5,000 keyed by (a, b, d), on the two
    # colours of a 100 x 100 checkerboard of (a, b): no two overlap, but telling each rule of the
    # second half from the first takes 50 comparisons, as no one key narrows them down.
    cells = [(i, j) for i in range(100) for j in range(100)]
    first = [f"{{amount: {{max: 500}}, metadata: {{a: a{i}, b: b{j}, c: x}}}}" for i, j in cells if (i + j) % 2 == 0]
    second = [f"{{amount: {{max: 500}}, metadata: {{a: a{i}, b: b{j}, d: x}}}}" for i, j in cells if (i + j) % 2]

    with pytest.raises(ConfigError) as raised:
        parse_rules(document(first + second), SOURCE)

    message = str(raised.value)
    assert message.startswith(f"{SOURCE}:"), message
    assert "too many rules over the same amounts" in message
    assert "comparisons" in message
    assert "own amount ranges" in message


@FREEZE
def test_more_than_ten_thousand_rules_are_refused_at_the_first_one_too_many() -> None:
    text = document([f"{{amount: {1000 + n}}}" for n in range(MAX_RULES + 1)])

    with pytest.raises(ConfigError) as raised:
        parse_rules(text, SOURCE)

    assert str(raised.value).startswith(f"{SOURCE}:{MAX_RULES + 2}: more than {MAX_RULES} rules in one document")
    assert "split" in str(raised.value)


# -- the same verdict as comparing every pair --------------------------------------------------


@dataclass(frozen=True)
class Plain:
    """What check_overlaps reads of a rule."""

    name: str
    applies_to: str
    amount_min: int | None
    amount_max: int | None
    currency: str | None
    metadata: tuple[tuple[str, str], ...]
    source: str


def overlapping(a: Plain, b: Plain) -> bool:
    """The old every-pair definition: same kind, intersecting amounts, no field telling them apart."""
    if a.applies_to != b.applies_to:
        return False
    a_lo, a_hi = a.amount_min or 1, a.amount_max or 99999999
    b_lo, b_hi = b.amount_min or 1, b.amount_max or 99999999
    if a_hi < b_lo or b_hi < a_lo:
        return False
    if a.currency and b.currency and a.currency != b.currency:
        return False
    a_meta, b_meta = dict(a.metadata), dict(b.metadata)
    return all(a_meta[k] == b_meta[k] for k in a_meta.keys() & b_meta.keys())


def ranged(rule: Plain) -> bool:
    return rule.amount_min is not None or rule.amount_max is not None


AMOUNTS = st.one_of(st.none(), st.integers(1, 12))


@st.composite
def plain_rules(draw: st.DrawFn) -> list[Plain]:
    made = []
    for n in range(draw(st.integers(0, 12))):
        lo, hi = draw(AMOUNTS), draw(AMOUNTS)
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        metadata = draw(st.dictionaries(st.sampled_from("abc"), st.sampled_from("xy"), max_size=3))
        made.append(
            Plain(
                name=f"r{n}",
                applies_to=draw(st.sampled_from(["charge", "refund"])),
                amount_min=lo,
                amount_max=hi,
                currency=draw(st.sampled_from([None, "USD", "EUR"])),
                metadata=tuple(sorted(metadata.items())),
                source=f"f:{n}",
            )
        )
    return made


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_rules())
def test_the_verdict_is_that_of_comparing_every_pair(rules: list[Plain]) -> None:
    pairs = [(a, b) for a, b in itertools.combinations(rules, 2) if ranged(a) and ranged(b) and overlapping(a, b)]
    try:
        check_overlaps(rules)
    except ConfigError as exc:
        message = str(exc)
        named = [r for r in rules if json.dumps(r.name) in message]
        assert len(named) == 2, message
        assert overlapping(named[0], named[1])
        assert ranged(named[0])
        assert ranged(named[1])
        assert message.startswith(named[1].source + ":")  # at the later rule
    else:
        assert not pairs, pairs

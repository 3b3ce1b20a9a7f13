"""Overlapping rules: two rules of one document that could catch the same request.

Rules a and b overlap when they apply to the same kind, their amount ranges intersect, and no
field tells them apart: currency and each metadata key either is missing from one of them or has
the same value in both (a request can carry every metadata key at once). Comparing every pair is
quadratic (12,000 rules froze a server for over a minute), so the rules are swept in order of
their lowest amount, keeping the *active* ones, whose range reaches the amount the sweep is at;
each rule is compared only with the active rules it could be confused with, found through indexes:

- currency counts as one more metadata key, so "told apart" means one thing for both;
- active rules are grouped by their set of keys (their shape). A group with no key in common with
  the new rule overlaps it at once; a group whose keys the new rule all has is looked up by their
  values (two rules of one shape and the same values always overlap); a group that shares a single
  key is looked up by that key's value;
- what is left (rules told apart only by combinations of several keys, a shape the new rule only
  partly shares) is compared one by one, against a budget: a document that spends it is refused
  with a clear error rather than left to run for minutes.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from typing import Protocol, TypeVar

from sandbox.errors import ConfigError

# Per kind of rule: group lookups plus one-by-one comparisons, a tenth of a second or so. Real
# documents spend a few per rule; only contrived ones come near it (tests/unit/test_scenario_overlaps.py).
MAX_COMPARISONS = 100_000
# Keys of a rule's shape: "c" for the currency, "m" + name for a metadata key, so the two never clash.
_CURRENCY = "c"
_LOWEST, _HIGHEST = 1, 99_999_999
_Key = TypeVar("_Key")


class Ruled(Protocol):
    """What the sweep needs of a rule (sandbox.scenarios.Rule has it)."""

    @property
    def name(self) -> str: ...
    @property
    def applies_to(self) -> str: ...
    @property
    def amount_min(self) -> int | None: ...
    @property
    def amount_max(self) -> int | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def metadata(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def source(self) -> str: ...


class _Group:
    """The active rules of one shape (set of keys), indexed by all their values and by each one."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.by_values: dict[tuple[str, ...], dict[int, None]] = {}
        self.by_key: dict[str, dict[str, dict[int, None]]] = {key: {} for key in keys}
        self.size = 0

    def add(self, index: int, values: tuple[str, ...]) -> None:
        self.by_values.setdefault(values, {})[index] = None
        for key, value in zip(self.keys, values, strict=True):
            self.by_key[key].setdefault(value, {})[index] = None
        self.size += 1

    def remove(self, index: int, values: tuple[str, ...]) -> None:
        _discard(self.by_values, values, index)
        for key, value in zip(self.keys, values, strict=True):
            _discard(self.by_key[key], value, index)
        self.size -= 1


def _discard(index: dict[_Key, dict[int, None]], key: _Key, item: int) -> None:
    members = index[key]
    del members[item]
    if not members:
        del index[key]


def check_overlaps(rules: Sequence[Ruled], max_comparisons: int = MAX_COMPARISONS) -> None:
    """Raise ConfigError naming two overlapping rules (at the later one's line), if any, or the
    rule at which more than `max_comparisons` comparisons had been spent."""
    for kind in ("charge", "refund"):
        ranged = [i for i, r in enumerate(rules) if r.applies_to == kind and (r.amount_min or r.amount_max)]
        _Sweep(rules, max_comparisons).run(ranged)


class _Sweep:
    """One pass over the rules of one kind, in order of their lowest amount."""

    def __init__(self, rules: Sequence[Ruled], budget: int) -> None:
        self.rules = rules
        self.limit = self.budget = budget
        self.groups: dict[tuple[str, ...], _Group] = {}  # the shapes that have active rules
        self.keys: dict[int, dict[str, str]] = {}

    def run(self, ranged: list[int]) -> None:
        rules = self.rules
        low = {i: rules[i].amount_min or _LOWEST for i in ranged}
        ending: list[tuple[int, int]] = []  # a heap of (highest amount, index) of the active rules
        for index in sorted(ranged, key=lambda i: (low[i], i)):
            while ending and ending[0][0] < low[index]:
                self._retire(heapq.heappop(ending)[1])
            mine = self.keys[index] = _keys(rules[index])
            for group in self.groups.values():
                other = self._confused(group, mine)
                if other is not None:
                    _overlap(rules[min(other, index)], rules[max(other, index)])
                if self.budget < 0:
                    raise ConfigError(
                        f"{rules[index].source}: too many rules over the same amounts to check for overlaps"
                        f" (over {self.limit} comparisons): they are told apart only by combinations of"
                        " several metadata keys; give them their own amount ranges, or split the document."
                    )
            shape = tuple(mine)
            self.groups.setdefault(shape, _Group(shape)).add(index, tuple(mine.values()))
            heapq.heappush(ending, (rules[index].amount_max or _HIGHEST, index))

    def _retire(self, index: int) -> None:
        mine = self.keys[index]
        shape = tuple(mine)
        group = self.groups[shape]
        group.remove(index, tuple(mine.values()))
        if not group.size:
            del self.groups[shape]

    def _confused(self, group: _Group, mine: dict[str, str]) -> int | None:
        """An active rule of `group` that no key tells apart from the rule with keys `mine`:
        each key both have holds the same value in both."""
        self.budget -= 1
        shared = [key for key in group.keys if key in mine]
        if not shared:
            return next(iter(next(iter(group.by_values.values()))))
        if len(shared) == len(group.keys):
            found = group.by_values.get(tuple(mine[key] for key in group.keys))
            return next(iter(found)) if found else None
        # The key whose value the fewest active rules share narrows them down most.
        candidates = min((group.by_key[key].get(mine[key], {}) for key in shared), key=len)
        if len(shared) == 1:
            return next(iter(candidates), None)
        for other in candidates:
            self.budget -= 1
            theirs = self.keys[other]
            if all(theirs[key] == mine[key] for key in shared):
                return other
            if self.budget < 0:
                break
        return None


def _keys(rule: Ruled) -> dict[str, str]:
    """The rule's keys in sorted order (its shape) with their values; the currency is one of them."""
    pairs = [("m" + key, value) for key, value in rule.metadata]
    if rule.currency:
        pairs.append((_CURRENCY, rule.currency))
    return dict(sorted(pairs))


def _overlap(first: Ruled, later: Ruled) -> None:
    lo = max(first.amount_min or _LOWEST, later.amount_min or _LOWEST)
    hi = min(first.amount_max or _HIGHEST, later.amount_max or _HIGHEST)
    raise ConfigError(
        f"{later.source}: rule {json.dumps(later.name)} overlaps rule {json.dumps(first.name)} ({first.source})"
        f" on amounts {lo}..{hi}; make the ranges disjoint or tell them apart by currency or metadata."
    )

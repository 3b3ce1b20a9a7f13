"""The rows of `bench/run.py`'s table, their targets and floors, and its exit-code rule.

A row with a `Goal` has a target (what README's "Guarantees" table states), maybe a stricter figure
from the issue that set it, and one of two kinds:

- gated: the run fails (exit code 1) when the row misses the floor that applies to this run;
- report: printed with its verdict against the target, never fails the run (a known open problem,
  or a figure with no agreed target yet).

The floor of a full run is the stricter of the target and the issue's figure. `--quick` is what CI
runs on a shared 2-core machine with 2-4 s runs, where a neighbour's burst can cost a ratio 20-30%
(one cost a single run 45%: the memory store's rows take the median of three runs for that);
its floor is the full floor loosened by `QUICK_SLACK` (half of a lower bound, twice an upper one):
noise of that size does not fail CI, and a collapse (an accidental O(n) path, a lost fast path,
a store that serializes everything) still does.
"""

from __future__ import annotations

from dataclasses import dataclass

QUICK_SLACK = 2.0


@dataclass(frozen=True)
class Goal:
    op: str  # ">=" (a lower bound: throughput ratios) or "<=" (an upper bound: times, sizes, slowdowns)
    target: float
    unit: str  # as printed after the number: "x", " s", " MB", " bytes"
    issue: float | None = None  # the issue's figure, when it differs from the target
    gated: bool = True

    def floor(self, quick: bool) -> float:
        strict = self.target
        if self.issue is not None:
            strict = max(strict, self.issue) if self.op == ">=" else min(strict, self.issue)
        if not quick:
            return strict
        return strict / QUICK_SLACK if self.op == ">=" else strict * QUICK_SLACK

    def met(self, value: float, bound: float) -> bool:
        return value >= bound if self.op == ">=" else value <= bound

    def target_text(self) -> str:
        text = f"{self.op} {fmt(self.target)}{self.unit}"
        return text + (f" (issue {fmt(self.issue)}{self.unit})" if self.issue is not None else "")

    def floor_text(self, quick: bool) -> str:
        if not self.gated:
            return "report"
        bound = self.floor(quick)
        why = "target" if self.issue is None or bound == self.target else "issue"
        if quick:
            why = f"{why} / {fmt(QUICK_SLACK)}" if self.op == ">=" else f"{why} x {fmt(QUICK_SLACK)}"
        return f"{self.op} {fmt(bound)}{self.unit} ({why})"


@dataclass
class Row:
    name: str
    value: float
    unit: str
    goal: Goal | None = None
    detail: str = ""
    digits: int = 2
    # Filled by judge(), so that the JSON results say what each row was held to.
    target: str = ""
    floor: str = ""
    passed: bool | None = None  # gated: against this run's floor; report: against the target

    @property
    def result(self) -> str:
        if self.passed is None or self.goal is None:
            return ""
        if self.goal.gated:
            return "PASS" if self.passed else "FAIL"
        return "met" if self.passed else "missed"


def judge(rows: list[Row], quick: bool) -> list[Row]:
    """Rows that have a goal get their target, floor and verdict; the gated rows that failed are returned."""
    failed = []
    for row in rows:
        if row.goal is None:
            continue
        goal = row.goal
        row.target, row.floor = goal.target_text(), goal.floor_text(quick)
        row.passed = goal.met(row.value, goal.floor(quick) if goal.gated else goal.target)
        if goal.gated and not row.passed:
            failed.append(row)
    return failed


def fmt(number: float) -> str:
    """A bound as written by people: 0.325, 0.5, 1.2, 1024."""
    return f"{number:.3f}".rstrip("0").rstrip(".")


RULE = (
    "exit code: 1 when a gated row misses the floor of this run (full: the stricter of target and issue; "
    f"--quick: that loosened {fmt(QUICK_SLACK)}x, half of a lower bound, twice an upper one); "
    "'report' rows never fail the run"
)

"""The pytest plugin's session report: the findings and coverage of every test that used the
`payments_sandbox` fixture, read at each test's teardown (before the reset drops its journal),
merged across xdist workers, printed, written as JSON, and judged for `--payments-sandbox-strict`
and `--payments-sandbox-require`.

Kept as plain JSON-able data (`data()` / `merge()`) because an xdist worker hands it to the
controller through `workeroutput`, which execnet serialises. No pytest and no server code here:
the plugin imports this module in every pytest run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandbox.remote import Coverage, Finding, Met, describe_finding

__all__ = ["KINDS", "SessionFinding", "SessionReport"]

Kind = Literal["scenarios", "error_codes", "faults"]
KINDS: tuple[Kind, ...] = ("scenarios", "error_codes", "faults")  # a coverage answer's parts, as printed
_LISTED = 8  # missing names shown on a coverage line; the JSON report has them all


class SessionFinding(Finding):
    """A finding of the session's report: the test whose tenant it is, by nodeid."""

    test: str


@dataclass
class SessionReport:
    """What the tests of this process (or, on the xdist controller, of the whole session) showed."""

    tests: int = 0  # tests whose tenant was read
    findings: list[SessionFinding] = field(default_factory=list)
    met: dict[str, set[str]] = field(default_factory=lambda: {kind: set() for kind in KINDS})
    known: dict[str, set[str]] = field(default_factory=lambda: {kind: set() for kind in KINDS})  # met or missing
    unread: list[str] = field(default_factory=list)  # "nodeid: why" for tenants that could not be read
    reasons: list[str] = field(default_factory=list)  # why the session fails: `failures()`, at its end

    def add(self, nodeid: str, findings: Iterable[Finding], coverage: Coverage) -> None:
        """One test's tenant, read at its teardown."""
        self.tests += 1
        self.findings += [SessionFinding(**finding, test=nodeid) for finding in findings]
        self._cover(coverage)

    def add_unread(self, nodeid: str, error: Exception) -> None:
        self.unread.append(f"{nodeid}: {error}")

    def coverage(self) -> Coverage:
        """The union over the tests: met by any test; missing, if no test met it."""
        parts = {kind: _met(self.met[kind], self.known[kind]) for kind in KINDS}
        return Coverage(scenarios=parts["scenarios"], error_codes=parts["error_codes"], faults=parts["faults"])

    def data(self) -> dict[str, Any]:
        """The report as JSON-able data: what a worker sends, what `merge()` takes."""
        return {"tests": self.tests, "findings": self.findings, "coverage": self.coverage(), "unread": self.unread}

    def merge(self, data: dict[str, Any]) -> None:
        """Add a worker's `data()`."""
        self.tests += data["tests"]
        self.findings += data["findings"]
        self.unread += data["unread"]
        self._cover(data["coverage"])

    def _cover(self, coverage: Coverage) -> None:
        for kind in KINDS:
            self.met[kind].update(coverage[kind]["met"])
            self.known[kind].update(coverage[kind]["met"], coverage[kind]["missing"])

    def write(self, path: Path) -> None:
        """The JSON report: `{"findings": [... each with "test"], "coverage": {...}}`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"findings": self.findings, "coverage": self.coverage()}, indent=2) + "\n")

    def lines(self) -> list[str]:
        """The terminal summary: one line per finding, then one per kind of coverage."""
        if not self.tests and not self.unread:
            return []
        lines = [f"{finding['test']}: {describe_finding(finding)}" for finding in self.findings]
        if not self.findings and self.tests:
            lines.append(f"payments-sandbox: no findings in {_count(self.tests, 'test')}")
        lines += [_coverage_line(kind, self.met[kind], self.known[kind]) for kind in KINDS if self.known[kind]]
        if self.unread:
            tests = _count(len(self.unread), "test")
            lines.append(f"payments-sandbox: could not read the findings of {tests} ({self.unread[0]})")
        return lines

    def failures(self, *, strict: bool, required: list[str]) -> list[str]:
        """Why the session fails: findings (or tenants not read) under strict, required scenarios
        never met or not rules at all."""
        reasons = []
        if strict and self.findings:
            reasons.append(
                f"--payments-sandbox-strict: the client got {_count(len(self.findings), 'finding')} "
                f"in {_count(len({f['test'] for f in self.findings}), 'test')}"
            )
        if strict and self.unread:
            reasons.append(
                f"--payments-sandbox-strict: the findings of {_count(len(self.unread), 'test')} could not be read"
            )
        known, met = self.known["scenarios"], self.met["scenarios"]
        unknown = [name for name in required if self.tests and name not in known]
        never = [name for name in required if name not in met and name not in unknown]
        if never:
            why = "" if self.tests else " (no test used the payments_sandbox fixture)"
            reasons.append(f"--payments-sandbox-require: scenario never met{why}: {', '.join(never)}")
        if unknown:
            reasons.append(
                f"--payments-sandbox-require: not a scenario rule of this sandbox: {', '.join(unknown)} "
                f"(the rules are {', '.join(sorted(known)) or 'none'})"
            )
        return reasons


def _coverage_line(kind: str, met: set[str], known: set[str]) -> str:
    """`payments-sandbox: scenarios met 9/14: missing refund_failed, ...`"""
    line = f"payments-sandbox: {kind.replace('_', ' ')} met {len(met)}/{len(known)}"
    missing = sorted(known - met)
    if missing:
        line += ": missing " + ", ".join(missing[:_LISTED])
    if len(missing) > _LISTED:
        line += f" and {len(missing) - _LISTED} more"
    return line


def _met(met: set[str], known: set[str]) -> Met:
    return Met(met=sorted(met), missing=sorted(known - met))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

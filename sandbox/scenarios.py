"""Scenario rules: YAML -> checked against a JSON Schema -> immutable rules -> match().

A rule says which charges or refunds it catches (an amount or range, optionally a currency and
metadata values, or `metadata.sandbox_scenario` naming it) and what happens to them. Refund rules
match on the charge being refunded, so one magic charge amount makes every refund of it fail.
Every rule remembers `<file>:<line>` so that errors and the catalog point back at the source.

parse_rules is the one way in, for files and uploads alike: scenario_yaml reads the text within
its limits, scenario_schema checks the shape, `_rule` what the schema cannot say (headers a reply
can carry, a settlement that ends, consistent outcomes), scenario_overlaps that no two rules
compete for one request. Every refusal is a ConfigError starting `<source>:<line>` and naming the fix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import scenario_schema, scenario_yaml
from sandbox.errors import ConfigError
from sandbox.models import Fault, FaultKind, Misdelivery
from sandbox.scenario_overlaps import check_overlaps
from sandbox.scenario_yaml import shown
from sandbox.settings import CHAOS_PROFILES, DEFAULT_SCENARIOS

# Limits of one document (a file, or an upload to the control API, whose body is also capped at
# 1 MiB by default): checked at its line, with the fix, before the work they bound is done.
MAX_DOCUMENT_BYTES = 4 << 20
MAX_RULES = 10_000
MAX_SETTLE_SECONDS = 10 * 365 * 24 * 3600  # ten years, as far as the clock can be advanced at once
# An HTTP field name (RFC 9110 token) and the characters a header value may hold: printable
# Latin-1 and tab, since the server writes header values as Latin-1 bytes.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_HEADER_TEXT = re.compile(r"[^\t\x20-\x7e\xa0-\xff]")
# Headers about the connection or the framing of the body (uvicorn sets those), hop-by-hop ones,
# and the ones the sandbox sets on every scenario reply itself.
_FRAMING = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer"}
    | {"upgrade", "proxy-authenticate", "proxy-authorization"}
)
_OWN_HEADERS = frozenset({"content-type", "request-id", "sandbox-scenario", "idempotent-replayed"})


@dataclass(frozen=True)
class Rule:
    name: str
    applies_to: str
    amount_min: int | None
    amount_max: int | None
    currency: str | None
    metadata: tuple[tuple[str, str], ...]
    status: int
    error: dict[str, str] | None
    retryable: bool | None
    record: str  # what is stored: charge succeeded|failed|pending|none, refund succeeded|none
    settle_after: float | None
    settle_to: str | None
    settle_code: str | None
    delay_ms: int
    headers: tuple[tuple[str, str], ...]
    fail_first: bool
    fault: Fault | None
    webhooks: Misdelivery | None
    probability: float | None  # None: the rule fires whenever it matches
    source: str
    order: int
    spec: dict[str, Any]

    def matches(self, amount: int, currency: str, metadata: dict[str, str]) -> bool:
        if self.amount_min is None and self.amount_max is None and not self.currency and not self.metadata:
            return False  # a rule without `when` is reached only by metadata.sandbox_scenario
        if self.amount_min is not None and amount < self.amount_min:
            return False
        if self.amount_max is not None and amount > self.amount_max:
            return False
        if self.currency is not None and currency != self.currency:
            return False
        return all(metadata.get(key) == value for key, value in self.metadata)

    def catalog(self) -> dict[str, Any]:
        return {"name": self.name, "applies_to": self.applies_to, **self.spec, "source": self.source}

    @property
    def chaos(self) -> bool:
        """Whether the rule is a built-in chaos profile's: those come after every other rule."""
        return self.source.startswith(_CHAOS_SOURCE)


class RuleSet:
    """Rules in precedence order (first wins), indexed by exact amount for the common case."""

    def __init__(self, rules: list[Rule], fingerprints: dict[str, str] | None = None) -> None:
        self.rules = tuple(rules)
        self.fingerprints = fingerprints or {}
        self.by_name: dict[tuple[str, str], Rule] = {}
        self._exact: dict[tuple[str, int], list[Rule]] = {}
        self._other: dict[str, list[Rule]] = {"charge": [], "refund": []}
        for rule in self.rules:
            self.by_name.setdefault((rule.applies_to, rule.name), rule)
            if rule.amount_min is not None and rule.amount_min == rule.amount_max:
                self._exact.setdefault((rule.applies_to, rule.amount_min), []).append(rule)
            else:
                self._other[rule.applies_to].append(rule)

    def names(self) -> set[str]:
        return {name for _, name in self.by_name}

    def match(
        self, kind: str, amount: int, currency: str, metadata: dict[str, str], fires: Fires = lambda p: True
    ) -> Rule | None:
        """The first rule that matches and fires (`fires(probability)`: a rule with a probability fires
        by chance). A rule named in metadata.sandbox_scenario always fires."""
        # A name picks the rule of this kind so named; a name only the other kind has (a charge
        # naming a refund rule, so that its refunds fail) leaves the amount rules in force.
        named = self.by_name.get((kind, metadata.get("sandbox_scenario", "")))
        if named is not None:
            return named
        best: Rule | None = None
        for rule in self._exact.get((kind, amount), ()):
            if rule.matches(amount, currency, metadata) and fires(rule.probability):
                best = rule
                break
        for rule in self._other[kind]:
            earlier = best is None or rule.order < best.order
            if earlier and rule.matches(amount, currency, metadata) and fires(rule.probability):
                best = rule
                break
        return best

    def layered_over(self, base: RuleSet) -> RuleSet:
        """These rules ahead of `base`, except a chaos profile's, which go after it; a rule here
        replaces one of `base` with the same name."""
        mine = {(r.applies_to, r.name) for r in self.rules}
        ahead = [r for r in self.rules if not r.chaos]
        behind = [r for r in self.rules if r.chaos]
        rules = ahead + [r for r in base.rules if (r.applies_to, r.name) not in mine] + behind
        return RuleSet(_renumber(rules), base.fingerprints)


Fires = Callable[[float | None], bool]
_CHAOS_SOURCE = str(CHAOS_PROFILES.resolve())  # how the source of a chaos profile's rule begins


def rules_from_catalog(items: list[dict[str, Any]]) -> list[Rule]:
    """Rules back from their `catalog()` (as a store keeps a tenant's uploaded rules), already checked."""
    return [
        _rule({k: v for k, v in item.items() if k != "source"}, _Stored(item["source"]), n)
        for n, item in enumerate(items)
    ]


class _Stored:
    """Where a stored rule came from; it was checked when uploaded, so no message ever quotes this."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __str__(self) -> str:
        return self.source

    def at(self, *path: str, key: bool = False) -> str:
        return self.source


def _renumber(rules: list[Rule]) -> list[Rule]:
    from dataclasses import replace

    return [replace(rule, order=index) for index, rule in enumerate(rules)]


def scenario_files(paths: tuple[Path, ...]) -> list[Path]:
    """Expand folders to their `*.yaml` / `*.yml` files, sorted; keep files as given."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                raise ConfigError(f"{path}: no *.yaml files in this folder; add one or drop --scenarios {path}.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"{path}: no such scenario file or folder; fix the path given to --scenarios.")
    return files


def load_rules(paths: tuple[Path, ...]) -> RuleSet:
    """Rules of every file, in precedence order; a rule named like an earlier one is dropped."""
    rules: list[Rule] = []
    fingerprints: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    for path in scenario_files(paths):
        raw = path.read_bytes()
        fingerprints[str(path.resolve())] = hashlib.sha256(raw).hexdigest()
        # The built-in pack is checked against the schema by the test suite; skipping it here
        # keeps jsonschema out of the start-up of a sandbox given no files of its own.
        bundled = path.resolve() == DEFAULT_SCENARIOS.resolve()
        for rule in parse_rules(raw, str(path.resolve()), check_schema=not bundled):
            if (rule.applies_to, rule.name) not in seen:
                seen.add((rule.applies_to, rule.name))
                rules.append(rule)
    return RuleSet(_renumber(rules), fingerprints)


def parse_rules(raw: bytes | str, source: str, *, check_schema: bool = True) -> list[Rule]:
    """Parse and check one document of rules (a file, or a body sent to the control API).

    A pure function of its arguments: it may run in several threads at once."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        raise ConfigError(
            f"{source}:1: the document is {size} bytes, over the limit of {MAX_DOCUMENT_BYTES} bytes"
            f" ({MAX_DOCUMENT_BYTES >> 20} MiB); split it into several files."
        )
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1 if isinstance(raw, bytes) else 1
        raise ConfigError(
            f"{source}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8."
        ) from exc
    document = scenario_yaml.load(text, source)
    data = document.data
    if data is None:
        raise ConfigError(f"{source}:1: the document is empty; write `rules:` with a list of rules.")
    specs = data.get("rules") if isinstance(data, dict) else None
    if isinstance(specs, list) and len(specs) > MAX_RULES:
        raise ConfigError(
            f"{source}:{document.line(['rules', MAX_RULES])}: more than {MAX_RULES} rules in one document;"
            " split them into several files (or uploads)."
        )
    if check_schema:
        scenario_schema.check(document, source)
    if not isinstance(specs, list):  # reached only without the schema check: the built-in pack
        raise ConfigError(f"{source}:1: no list of rules; write `rules:` with a list of rules.")
    rules: list[Rule] = []
    names: dict[tuple[str, str], int] = {}
    for index, (spec, line) in enumerate(zip(specs, document.item_lines(["rules"]), strict=True)):
        key = (spec["applies_to"], spec["name"])
        if key in names:
            raise ConfigError(
                f"{source}:{line}: duplicate rule name {shown(spec['name'])} (first at line {names[key]});"
                " give each rule its own name."
            )
        names[key] = line
        rules.append(_rule(spec, _Where(document, source, index, line), index))
    # A rule with a probability lets the requests it does not fire for through to the rules after it.
    check_overlaps([rule for rule in rules if rule.probability is None])
    return rules


class _Where:
    """`<source>:<line>` of rule `index` of a document, or of one of its values."""

    def __init__(self, document: scenario_yaml.Document, source: str, index: int, line: int) -> None:
        self.document, self.source, self.index, self.line = document, source, index, line

    def __str__(self) -> str:
        return f"{self.source}:{self.line}"

    def at(self, *path: str, key: bool = False) -> str:
        """`<source>:<line>: rules.<index>.<path>`, the start of a message about that value."""
        full = ["rules", self.index, *path]
        return f"{self.source}:{self.document.line(full, key=key)}: {scenario_schema.where(full)}"


def _rule(spec: dict[str, Any], where: _Where | _Stored, order: int) -> Rule:
    when = spec.get("when", {})
    then = spec["then"]
    kind = spec["applies_to"]
    name = spec["name"]  # quoted in messages as shown(name): only a refused rule pays for that
    amount = when.get("amount")
    lo, hi = (amount, amount) if not isinstance(amount, dict) else (amount.get("min"), amount.get("max"))
    lo, hi = _whole(lo), _whole(hi)
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"{where.at('when', 'amount')}: min {lo} is above max {hi}; swap them.")
    fault = _fault(then.get("fault"), kind, then, where)
    error = then.get("error")
    if fault is not None and not fault.commit and not error:
        error = _CUT_BEFORE_COMMIT  # what the client would have read, had the connection held
    status = _whole(then.get("status", 500 if error is _CUT_BEFORE_COMMIT else 400 if error else 200))
    if error and status < 400:
        raise ConfigError(f"{where}: rule {shown(name)} has an error but status {status}; use a 4xx or 5xx status.")
    if not error and status >= 400:
        raise ConfigError(
            f"{where}: rule {shown(name)} has status {status} but no error; add error: {{code, message}}."
        )
    other = "refund" if kind == "charge" else "charge"
    if other in then or (kind == "refund" and "settle" in then):
        field = other if other in then else "settle"
        raise ConfigError(f"{where}: `{field}` does not apply to a {kind} rule; remove it or use applies_to: {other}.")
    record = then.get(kind, "none" if error else "succeeded")
    if then.get("fail_first_attempt") and not error:
        raise ConfigError(f"{where}: fail_first_attempt needs the error of the first attempt; add error and status.")
    if then.get("fail_first_attempt") and kind in then:
        raise ConfigError(f"{where}: a fail_first_attempt rule stores nothing on its first attempt; remove `{kind}`.")
    if then.get("fail_first_attempt") and fault is not None and fault.commit:
        raise ConfigError(
            f"{where.at('then', 'fault', 'commit')}: a fail_first_attempt rule stores nothing on its first attempt;"
            " use commit: false."
        )
    if record == "failed" and not error:
        raise ConfigError(f"{where}: a failed charge needs an error; add error: {{code, message}} and a 4xx status.")
    if (record == "pending") != ("settle" in then):
        raise ConfigError(f"{where}: `charge: pending` and `settle` go together; give both or neither.")
    if record == "pending" and error:
        raise ConfigError(f"{where}: a pending charge is accepted; remove the error or store the charge as failed.")
    if record == "succeeded" and error and kind == "charge" and status < 500:
        raise ConfigError(
            f"{where}: a charge committed as succeeded answers with a 5xx error (e.g. 504); use status >= 500."
        )
    settle = then.get("settle", {})
    after = settle.get("after_seconds")
    if after is not None and not (isinstance(after, int | float) and 0 <= after <= MAX_SETTLE_SECONDS):
        # The schema's `maximum` lets NaN through (every comparison with it is false), and the
        # built-in pack skips the schema: a charge that never settles broke its dashboard page.
        raise ConfigError(
            f"{where.at('then', 'settle', 'after_seconds')}: {shown(after)} is not a"
            f" number of seconds from 0 to {MAX_SETTLE_SECONDS} (ten years); use a finite number in that range."
        )
    headers = then.get("headers", {})
    for header, value in headers.items():
        _check_header(header, value, where)
    return Rule(
        name=name,
        applies_to=kind,
        amount_min=lo,
        amount_max=hi,
        currency=when.get("currency"),
        metadata=tuple(sorted(when.get("metadata", {}).items())),
        status=status,
        error=error,
        retryable=then.get("retryable"),
        record=record,
        settle_after=after,
        settle_to=settle.get("to"),
        settle_code=settle.get("decline_code"),
        delay_ms=_whole(then.get("delay_ms", 0)),
        headers=tuple(headers.items()),
        fail_first=bool(then.get("fail_first_attempt")),
        fault=fault,
        webhooks=_misdelivery(then.get("webhooks"), kind, record, where),
        probability=spec.get("probability"),
        source=str(where),
        order=order,
        spec={k: v for k, v in spec.items() if k not in ("name", "applies_to")},
    )


def _misdelivery(spec: dict[str, Any] | None, kind: str, record: str, where: _Where | _Stored) -> Misdelivery | None:
    """A rule's `then.webhooks`: a refused refund tells of itself (refund.failed), a charge stored as
    none of nothing."""
    if spec is None:
        return None
    if kind == "charge" and record == "none":
        raise ConfigError(
            f"{where.at('then', 'webhooks')}: the rule stores no charge, so there is no event to deliver;"
            " remove `webhooks` or store the charge (charge: failed, for a decline)."
        )
    return Misdelivery(
        _whole(spec.get("duplicate", 1)),
        float(spec.get("delay_seconds", 0)),
        bool(spec.get("out_of_order", False)),
        bool(spec.get("bad_signature", False)),
    )


# The error a `commit: false` fault without one of its own stands for (sent whole by no fault but
# cut, malformed or slow by the others).
_CUT_BEFORE_COMMIT = {
    "code": "processing_error",
    "message": "The request failed before it was processed; retry it with the same Idempotency-Key.",
}


def _fault(spec: dict[str, Any] | None, kind: str, then: dict[str, Any], where: _Where | _Stored) -> Fault | None:
    """A rule's `then.fault`, checked against what else the rule says."""
    if spec is None:
        return None
    fault = Fault(FaultKind(spec["kind"]), bool(spec["commit"]), _whole(spec.get("bytes_per_second", 100)))
    if "bytes_per_second" in spec and fault.kind != FaultKind.SLOW_BODY:
        raise ConfigError(
            f"{where.at('then', 'fault', 'bytes_per_second')}: only a slow_body fault has a rate; remove it."
        )
    stored = then.get(kind)
    if not fault.commit and stored not in (None, "none"):
        raise ConfigError(
            f"{where.at('then', 'fault', 'commit')}: commit: false stores nothing, but the rule says"
            f" `{kind}: {stored}`; remove `{kind}` or use commit: true."
        )
    if fault.commit and (stored == "none" or (stored is None and "error" in then)):
        raise ConfigError(
            f"{where.at('then', 'fault', 'commit')}: commit: true stores the {kind} before the fault, but the rule"
            f" stores none; add `{kind}: succeeded` (or failed) or use commit: false."
        )
    return fault


def _whole(value: Any) -> Any:
    """JSON Schema's integers include 2.0 (YAML `2.0`, `1e3` in JSON): the rule keeps an int."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _check_header(name: Any, value: Any, where: _Where | _Stored) -> None:
    """A header a response can carry: the server writes it as Latin-1 bytes after the charge is
    committed, so a bad one used to become a 500 for a request whose charge was stored."""
    at = where.at("then", "headers", name, key=True)
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ConfigError(
            f"{at}: header name {shown(name)} is not an HTTP token; use letters, digits and"
            " !#$%&'*+-.^_`|~ only (e.g. X-Review)."
        )
    if name.lower() in _FRAMING:
        raise ConfigError(f"{at}: {name} belongs to the HTTP connection (framing, hop-by-hop); remove it.")
    if name.lower() in _OWN_HEADERS:
        raise ConfigError(f"{at}: {name} is set by the sandbox itself; remove it.")
    if not isinstance(value, str):
        raise ConfigError(f"{at}: {shown(value)} is not text; quote it.")
    bad = _NOT_HEADER_TEXT.search(value)
    if bad is not None:
        char = bad.group()
        what = "a line break" if char in "\r\n" else f"{shown(char)} (U+{ord(char):04X})"
        raise ConfigError(
            f"{at}: the value holds {what}, which a header cannot carry; use printable"
            " Latin-1 text on one line (plain ASCII is safest)."
        )
    if value != value.strip(" \t"):
        raise ConfigError(f"{at}: the value starts or ends with whitespace, which HTTP drops; remove it.")

"""Scenario rules: YAML -> checked against a JSON Schema -> immutable rules -> match().

A rule says which charges or refunds it catches (an amount or range, optionally a currency and
metadata values, or `metadata.sandbox_scenario` naming it) and what happens to them. Refund rules
match on the charge being refunded, so one magic charge amount makes every refund of it fail.
Every rule remembers `<file>:<line>` so that errors and the catalog point back at the source.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sandbox.errors import ConfigError
from sandbox.settings import DEFAULT_SCENARIOS, PACKAGE_DIR

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator


@cache
def _schema_validator() -> Validator:
    """The JSON Schema of a scenario document, compiled once, when a file first needs checking."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads((PACKAGE_DIR / "scenario-schema.json").read_text()))


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

    def match(self, kind: str, amount: int, currency: str, metadata: dict[str, str]) -> Rule | None:
        # A name picks the rule of this kind so named; a name only the other kind has (a charge
        # naming a refund rule, so that its refunds fail) leaves the amount rules in force.
        named = self.by_name.get((kind, metadata.get("sandbox_scenario", "")))
        if named is not None:
            return named
        best: Rule | None = None
        for rule in self._exact.get((kind, amount), ()):
            if rule.matches(amount, currency, metadata):
                best = rule
                break
        for rule in self._other[kind]:
            if (best is None or rule.order < best.order) and rule.matches(amount, currency, metadata):
                best = rule
                break
        return best

    def layered_over(self, base: RuleSet) -> RuleSet:
        """These rules ahead of `base`; a rule here replaces one of `base` with the same name."""
        mine = {(r.applies_to, r.name) for r in self.rules}
        rules = list(self.rules) + [r for r in base.rules if (r.applies_to, r.name) not in mine]
        return RuleSet(_renumber(rules), base.fingerprints)


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
    """Parse and check one document of rules (a file, or a body sent to the control API)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8."
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc.context}; fix the syntax there.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {exc}; fix the file.") from exc
    if root is None:
        raise ConfigError(f"{source}:1: the document is empty; write `rules:` with a list of rules.")
    found = _schema_validator().iter_errors(data) if check_schema else iter(())
    errors = sorted(found, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        error = errors[0]
        raise ConfigError(f"{source}:{_line(root, list(error.absolute_path), error)}: {_explain(error)}")
    rules: list[Rule] = []
    names: dict[tuple[str, str], int] = {}
    rules_node = next(value for key, value in root.value if key.value == "rules")
    specs: list[dict[str, Any]] = data["rules"] if isinstance(data, dict) else []
    for index, (spec, node) in enumerate(zip(specs, rules_node.value, strict=True)):
        where = f"{source}:{node.start_mark.line + 1}"
        key = (spec["applies_to"], spec["name"])
        if key in names:
            raise ConfigError(
                f"{where}: duplicate rule name {spec['name']!r} (first at line {names[key]});"
                " give each rule its own name."
            )
        names[key] = node.start_mark.line + 1
        rules.append(_rule(spec, where, index))
    _check_overlaps(rules)
    return rules


def _rule(spec: dict[str, Any], where: str, order: int) -> Rule:
    when = spec.get("when", {})
    then = spec["then"]
    kind = spec["applies_to"]
    amount = when.get("amount")
    lo, hi = (amount, amount) if isinstance(amount, int) else ((amount or {}).get("min"), (amount or {}).get("max"))
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"{where}: amount min {lo} is above max {hi}; swap them.")
    error = then.get("error")
    status = then.get("status", 400 if error else 200)
    if error and status < 400:
        raise ConfigError(f"{where}: rule {spec['name']!r} has an error but status {status}; use a 4xx or 5xx status.")
    if not error and status >= 400:
        raise ConfigError(
            f"{where}: rule {spec['name']!r} has status {status} but no error; add error: {{code, message}}."
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
    return Rule(
        name=spec["name"],
        applies_to=kind,
        amount_min=lo,
        amount_max=hi,
        currency=when.get("currency"),
        metadata=tuple(sorted(when.get("metadata", {}).items())),
        status=status,
        error=error,
        retryable=then.get("retryable"),
        record=record,
        settle_after=settle.get("after_seconds"),
        settle_to=settle.get("to"),
        settle_code=settle.get("decline_code"),
        delay_ms=then.get("delay_ms", 0),
        headers=tuple(then.get("headers", {}).items()),
        fail_first=bool(then.get("fail_first_attempt")),
        source=where,
        order=order,
        spec={k: v for k, v in spec.items() if k not in ("name", "applies_to")},
    )


def _check_overlaps(rules: list[Rule]) -> None:
    """Two rules of one file that could catch the same request make the file ambiguous."""
    ranged = [r for r in rules if r.amount_min is not None or r.amount_max is not None]
    for i, a in enumerate(ranged):
        for b in ranged[i + 1 :]:
            if a.applies_to != b.applies_to:
                continue
            a_lo, a_hi = a.amount_min or 1, a.amount_max or 99999999
            b_lo, b_hi = b.amount_min or 1, b.amount_max or 99999999
            if a_hi < b_lo or b_hi < a_lo:
                continue
            if a.currency and b.currency and a.currency != b.currency:
                continue
            a_meta, b_meta = dict(a.metadata), dict(b.metadata)
            if any(a_meta[k] != b_meta[k] for k in a_meta.keys() & b_meta.keys()):
                continue
            raise ConfigError(
                f"{b.source}: rule {b.name!r} overlaps rule {a.name!r} ({a.source}) on amounts"
                f" {max(a_lo, b_lo)}..{min(a_hi, b_hi)}; make the ranges disjoint"
                " or tell them apart by currency or metadata."
            )


def _line(root: yaml.Node, path: list[Any], error: ValidationError) -> int:
    """The 1-based line of the node at `path`, or of the deepest node on the way there; for an
    unknown key, the line of that key."""
    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    if error.validator == "additionalProperties" and isinstance(node, yaml.MappingNode):
        schema: Any = error.schema
        known = schema.get("properties", {})
        node = next((k for k, _ in node.value if k.value not in known), node)
    return int(node.start_mark.line) + 1


class _Loader(yaml.SafeLoader):
    """YAML without aliases: `*name` could expand a small body into gigabytes (billion laughs),
    and a list of rules never needs one."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in scenario files; write the value out", mark
            )
        return super().compose_node(parent, index)


def _explain(error: ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "the document"
    schema: Any = error.schema
    choices: Any = error.validator_value
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {})))
        return f"{where}: {error.message}; allowed keys are {allowed}."
    if error.validator == "enum" and error.absolute_path and error.absolute_path[-1] == "applies_to":
        return f"{where}: unknown rule kind {error.instance!r}; use applies_to: charge or applies_to: refund."
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not allowed; use one of {', '.join(map(str, choices))}."
    if error.validator == "required":
        return f"{where}: {error.message}; add it."
    if error.validator == "oneOf":
        return (
            f"{where}: {error.instance!r} is neither an amount nor a {{min, max}} range;"
            " write e.g. `amount: 100005` or `amount: {min: 1, max: 99}`."
        )
    return f"{where}: {error.message}; fix this value."

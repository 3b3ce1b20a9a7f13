"""The scenario JSON Schema: a quick plain-Python verdict per rule, and jsonschema to word errors.

jsonschema takes about 0.1 ms per rule (a second for 10,000), so the schema is also compiled here
into plain-Python predicates that answer "valid?" in microseconds. Only a rule they turn down is
given to jsonschema, which then words what is wrong; the predicates are built from the schema file
itself, so the two cannot drift apart, and a keyword the compiler does not know leaves jsonschema
to check everything (slower, never wrong). tests/unit/test_scenario_schema.py holds the predicates
to jsonschema's verdicts.

Messages quote the offending value as JSON (`true`, `null`, `"text"`), as the author wrote it,
rather than as Python's repr (`True`, `None`, `'text'`) that jsonschema's own messages use.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable
from functools import cache, reduce
from typing import TYPE_CHECKING, Any

from sandbox.errors import ConfigError
from sandbox.scenario_yaml import Document, shown
from sandbox.settings import PACKAGE_DIR

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

Check = Callable[[Any], bool]
_SCHEMA = PACKAGE_DIR / "scenario-schema.json"
# Keywords that only annotate: the compiled predicates ignore them, as validation does.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default"})
_TYPES: dict[str, Check] = {
    "object": lambda x: type(x) is dict,
    "array": lambda x: type(x) is list,
    "string": lambda x: type(x) is str,
    "boolean": lambda x: type(x) is bool,
    "null": lambda x: x is None,
    # JSON Schema's integer includes 2.0; bool is not a number to it.
    "integer": lambda x: (isinstance(x, int) and not isinstance(x, bool)) or (type(x) is float and x.is_integer()),
    "number": lambda x: isinstance(x, numbers.Number) and not isinstance(x, bool),
}


class _Unknown(Exception):
    """The schema uses a keyword, or a form of one, that the compiler does not model."""


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_SCHEMA.read_text())
    return loaded


@cache
def validator() -> Validator:
    """jsonschema's validator of a whole document, compiled when an error first needs wording."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


@cache
def rule_check() -> Check | None:
    """A predicate true exactly when a rule is valid by `$defs/rule`; None if it cannot be built."""
    try:
        return _compile({"$ref": "#/$defs/rule"}, schema())
    except (_Unknown, re.error):
        return None


@cache
def top_check() -> Check | None:
    """A predicate true exactly when the document is valid leaving its rules aside (they are
    checked one by one with `rule_check`); None if it cannot be built."""
    root = schema()
    try:
        rules = {k: v for k, v in root["properties"]["rules"].items() if k != "items"}
        return _compile({**root, "properties": {**root["properties"], "rules": rules}}, root)
    except (_Unknown, re.error, KeyError, AttributeError):
        return None


def check(document: Document, source: str) -> None:
    """Raise ConfigError for the first error: in the document's shape, else in the first bad rule."""
    data = document.data
    rules = data.get("rules") if type(data) is dict else None
    if type(rules) is not list:
        _raise_first(validator().iter_errors(data), document, source)
        return
    # The top level without its rules: jsonschema words any error there without walking them.
    quick_top = top_check()
    if quick_top is None or not quick_top(data):
        _raise_first(validator().iter_errors({**data, "rules": []}), document, source)
    quick = rule_check()
    for index, rule in enumerate(rules):
        if quick is None or not quick(rule):
            found = validator().iter_errors({"rules": [rule]})
            _raise_first(found, document, source, index)


def _raise_first(errors: Any, document: Document, source: str, index: int | None = None) -> None:
    """Raise the shallowest of `errors`; with `index`, they are of rule `index` validated alone."""
    # The shallowest first; at one place an unknown key before a missing one (`rulez:` is a typo
    # of `rules:`, and saying that `rules` is missing would hide it).
    listed: list[ValidationError] = sorted(
        errors, key=lambda e: (len(e.absolute_path), list(map(str, e.path)), e.validator != "additionalProperties")
    )
    if not listed:
        return
    error = listed[0]
    path = list(error.absolute_path)
    if index is not None and len(path) >= 2:
        path[1] = index
    line = document.line(path)
    if "propertyNames" in error.relative_schema_path:
        line = document.line([*path, error.instance], key=True)
    elif error.validator == "additionalProperties":
        extra = _extra_key(error)
        if extra is not None:
            line = document.line([*path, extra], key=True)
    raise ConfigError(f"{source}:{line}: {explain(error, path)}")


def _extra_key(error: ValidationError) -> str | None:
    known: Any = error.schema
    instance: Any = error.instance
    return next((k for k in instance if k not in known.get("properties", {})), None)


def where(path: list[Any]) -> str:
    """`rules.0.then.status`; a key that is not a plain word is quoted, so the path stays one line."""
    parts = [str(p) if isinstance(p, int) or re.fullmatch(r"[\w-]{1,64}", p) else shown(p, 40) for p in path]
    return ".".join(parts) or "the document"


def explain(error: ValidationError, path: list[Any]) -> str:
    """What is wrong and how to fix it, quoting values as JSON."""
    at = where(path)
    instance: Any = error.instance
    expected: Any = error.validator_value
    known: Any = error.schema
    kind = error.validator
    if "propertyNames" in error.relative_schema_path and path and path[-1] == "headers":
        return (
            f"{at}: header name {shown(instance)} is not an HTTP token of at most 64 characters; use letters,"
            " digits and !#$%&'*+-.^_`|~ only (e.g. X-Review)."
        )
    if "propertyNames" in error.relative_schema_path:
        return f"{at}: the key {shown(instance)} is not allowed ({kind} {shown(expected)}); rename it."
    if kind == "additionalProperties":
        extra = _extra_key(error)
        allowed = ", ".join(sorted(known.get("properties", {})))
        return f"{at}: unknown key {shown(extra)}; allowed keys are {allowed}."
    if kind == "enum" and path and path[-1] == "applies_to":
        return f"{at}: unknown rule kind {shown(instance)}; use applies_to: charge or applies_to: refund."
    if kind == "enum":
        return f"{at}: {shown(instance)} is not allowed; use one of {', '.join(map(str, expected))}."
    if kind == "required":
        missing = next((name for name in expected if name not in instance), expected[0])
        return f"{at}: {shown(missing)} is missing; add it."
    if kind == "oneOf":
        return (
            f"{at}: {shown(instance)} is neither an amount nor a {{min, max}} range;"
            " write e.g. `amount: 100005` or `amount: {min: 1, max: 99}`."
        )
    if kind == "type":
        # YAML reads `yes`, `1.0`, `null` or `2024-01-01` as something else than the text written.
        text = expected == "string" and not isinstance(instance, dict | list)
        fix = "quote it to keep it text" if text else "fix this value"
        return f"{at}: {shown(instance)} is not of type {shown(expected)}; {fix}."
    if kind in ("minimum", "maximum"):
        low, high = known.get("minimum"), known.get("maximum")
        span = (
            f"from {low} to {high}"
            if None not in (low, high)
            else f"{'at least' if high is None else 'at most'} {expected}"
        )
        return f"{at}: {shown(instance)} is out of range; fix it: use a number {span}."
    if kind == "pattern" and "\n" in instance:
        return f"{at}: {shown(instance)} holds a line break; remove it."
    if kind == "pattern":
        return f"{at}: {shown(instance)} does not match the pattern {shown(expected)}; fix this value."
    if kind in ("maxLength", "minLength", "maxProperties", "minProperties"):
        limit = {"maxLength": "at most {} characters", "minLength": "at least {} characters"}
        limit |= {"maxProperties": "at most {} entries", "minProperties": "at least {} entry"}
        return f"{at}: {shown(instance)} is the wrong size; use {limit[kind].format(expected)}."
    return f"{at}: {shown(instance)} fails the schema's {kind} {shown(expected)}; fix this value."


# -- the compiler -------------------------------------------------------------------------------
def _compile(node: Any, root: dict[str, Any]) -> Check:
    if not isinstance(node, dict):
        raise _Unknown
    checks: list[Check] = []
    for keyword, value in node.items():
        if keyword in _ANNOTATIONS:
            continue
        make = _KEYWORDS.get(keyword)
        if make is None:
            raise _Unknown(keyword)
        checks.append(make(value, node, root))
    return reduce(_both, checks) if checks else _anything


def _both(first: Check, second: Check) -> Check:
    return lambda x: first(x) and second(x)  # cheaper than all() over a generator


def _anything(x: Any) -> bool:
    return True


def _ref(ref: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    if not isinstance(ref, str) or not ref.startswith("#/$defs/") or len(node) > 1:
        raise _Unknown("$ref")  # only a local reference standing alone is modelled
    return _compile(root["$defs"][ref.removeprefix("#/$defs/")], root)


def _type(name: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    if name not in _TYPES:
        raise _Unknown("type")
    return _TYPES[name]


def _enum(values: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    if not all(isinstance(v, str) for v in values):
        raise _Unknown("enum")  # jsonschema's equality of numbers and booleans is not modelled
    allowed = frozenset(values)
    return lambda x: type(x) is str and x in allowed


def _bound(name: str) -> Callable[[Any, dict[str, Any], dict[str, Any]], Check]:
    """minimum, maximum, minLength, ...: each applies to one type and lets others through.
    Written as jsonschema writes the failure (`x < minimum`), negated, so that NaN agrees."""
    applies = {"minimum": "number", "maximum": "number", "minLength": "string", "maxLength": "string"}
    applies |= {"minProperties": "object", "maxProperties": "object"}
    is_type = _TYPES[applies[name]]
    sized = name not in ("minimum", "maximum")
    low = name.startswith("min")

    def make(limit: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise _Unknown(name)

        def check(x: Any) -> bool:
            if not is_type(x):
                return True
            size = len(x) if sized else x
            return not (size < limit) if low else not (size > limit)

        return check

    return make


def _pattern(pattern: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    search = re.compile(pattern).search  # jsonschema uses re.search too
    return lambda x: type(x) is not str or search(x) is not None


def _one_of(options: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    checks = [_compile(option, root) for option in options]
    return lambda x: sum(1 for check in checks if check(x)) == 1


def _items(item: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    check = _compile(item, root)
    return lambda x: type(x) is not list or all(check(value) for value in x)


def _required(names: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    return lambda x: type(x) is not dict or all(name in x for name in names)


def _property_names(names: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    check = _compile(names, root)
    return lambda x: type(x) is not dict or all(check(name) for name in x)


def _properties(properties: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    checks = {name: _compile(sub, root) for name, sub in properties.items()}

    def check(x: Any) -> bool:
        if type(x) is not dict:
            return True
        for name, value in x.items():
            known = checks.get(name)
            if known is not None and not known(value):
                return False
        return True

    return check


def _additional(extra: Any, node: dict[str, Any], root: dict[str, Any]) -> Check:
    if "patternProperties" in node or not isinstance(extra, bool | dict):
        raise _Unknown("additionalProperties")
    known = frozenset(node.get("properties", {}))
    if extra is True:
        return _anything
    if extra is False:
        return lambda x: type(x) is not dict or known.issuperset(x)
    check = _compile(extra, root)
    return lambda x: type(x) is not dict or all(check(v) for k, v in x.items() if k not in known)


_KEYWORDS: dict[str, Callable[[Any, dict[str, Any], dict[str, Any]], Check]] = {
    "$ref": _ref,
    "type": _type,
    "enum": _enum,
    "pattern": _pattern,
    "oneOf": _one_of,
    "items": _items,
    "required": _required,
    "propertyNames": _property_names,
    "properties": _properties,
    "additionalProperties": _additional,
    **{name: _bound(name) for name in ("minimum", "maximum", "minLength", "maxLength")},
    **{name: _bound(name) for name in ("minProperties", "maxProperties")},
}

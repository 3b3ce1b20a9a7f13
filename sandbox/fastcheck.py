"""fast_check(schema): a plain-Python predicate compiled from an OpenAPI 3.0 schema.

It answers "is this instance valid?" exactly as the jsonschema validator of `openapi.py` would, in
a few microseconds instead of tens: every request is asked, and only when the answer is no does
jsonschema run, to word the error. It models the keywords our contracts use and declines (returns
None for) any schema with another one, so correctness never depends on what it covers.
tests/unit/test_fast_check.py holds it to jsonschema's verdicts with hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from numbers import Number
from typing import Any

Check = Callable[[Any], bool]


class _Declined(Exception):
    """The schema uses something `fast_check` does not model."""


# Keywords the validator acts on that `fast_check` does not model, and keywords others consult
# (`patternProperties` by additionalProperties, readOnly/writeOnly by required, `$schema` by
# jsonschema's choice of validator class).
_DECLINED = frozenset(
    {"$ref", "$schema", "allOf", "anyOf", "oneOf", "not", "multipleOf", "uniqueItems", "discriminator"}
    | {"patternProperties", "readOnly", "writeOnly"}
)
# Each type as a test of `x` (`Number`: the ABC jsonschema's checker also admits).
_TYPES = {
    "string": "isinstance(x, str)",
    "integer": "(isinstance(x, int) and not isinstance(x, bool))",
    "number": "(isinstance(x, (int, float, Number)) and not isinstance(x, bool))",
    "boolean": "isinstance(x, bool)",
    "array": "isinstance(x, list)",
    "object": "isinstance(x, dict)",
}


def fast_check(schema: Any) -> Check | None:
    """A predicate that is True exactly when `OAS30Validator(schema)` finds no error, compiled to
    plain Python (a function per schema, its keywords as statements: one call per value checked);
    None when the schema uses a keyword it does not model (see `_DECLINED`).

    It assumes no format checker (as `_compile` builds the validators): `format` only matters to
    `type: string, format: binary`, which also admits bytes. Unknown keywords are ignored, as
    jsonschema ignores them."""
    program = _Program()
    try:
        name = program.function(schema)
    except (_Declined, re.error, TypeError):  # TypeError: an unhashable `required` or `enum` item
        return None
    return program.build(name)


class _Program:
    """The functions of one schema, as source text, and the values their text names."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {"Number": Number}
        self.sources: list[str] = []
        self.tables: list[str] = []

    def value(self, value: Any) -> str:
        name = f"v{len(self.values)}"
        self.values[name] = value
        return name

    def table(self, functions: dict[str, str]) -> str:
        """The name of a dict from each key to the function named for it, made once all are defined."""
        name = f"t{len(self.tables)}"
        entries = ", ".join(f"{key!r}: {function}" for key, function in functions.items())
        self.tables.append(f"{name} = {{{entries}}}")
        return name

    def function(self, schema: Any) -> str:
        """The name of a function checking `schema`; each keyword's lines return False on a failure."""
        if not isinstance(schema, dict) or not _DECLINED.isdisjoint(schema):
            raise _Declined
        lines: list[str] = []
        for part in (_type_lines, _enum_lines, _number_lines, _string_lines, _array_lines, _object_lines):
            lines += part(schema, self)
        name = f"f{len(self.sources)}"
        self.sources.append("\n    ".join([f"def {name}(x):", *lines, "return True"]))
        return name

    def build(self, name: str) -> Check:
        scope = dict(self.values)
        # The text names values (held in `scope`) and quotes property names with repr(): nothing of
        # the schema is run as code.
        exec("\n\n".join([*self.sources, *self.tables]), scope)
        check: Check = scope[name]
        return check


def _type_lines(schema: dict[str, Any], program: _Program) -> list[str]:
    if "type" not in schema:
        return []
    name = schema["type"]
    if not isinstance(name, str) or name not in _TYPES:
        raise _Declined  # jsonschema raises UnknownType
    test = _TYPES[name]
    if schema.get("nullable") is True:
        test += " or x is None"
    if name == "string" and schema.get("format") == "binary":
        test += " or isinstance(x, bytes)"
    return [f"if not ({test}): return False"]


def _enum_lines(schema: dict[str, Any], program: _Program) -> list[str]:
    if "enum" not in schema:
        return []
    enum = schema["enum"]
    # jsonschema compares with its `equal` (1 == 1.0, True != 1, deep for lists); only strings
    # and null, which compare plainly, are modelled.
    if not isinstance(enum, list) or not all(item is None or isinstance(item, str) for item in enum):
        raise _Declined
    strings = program.value(frozenset(item for item in enum if item is not None))
    null = " or x is None" if None in enum else ""
    return [f"if not ((isinstance(x, str) and x in {strings}){null}): return False"]


def _limit(schema: dict[str, Any], keyword: str, program: _Program) -> str | None:
    """The name the function's text gives the keyword's value, or None when the keyword is absent."""
    value = schema.get(keyword)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Declined  # jsonschema would compare with it and raise TypeError
    return program.value(value)


def _sizes(schema: dict[str, Any], program: _Program, fewest: str, most: str, indent: str) -> list[str]:
    """Lines refusing a len(x) under `fewest` or over `most` (minLength/maxLength and the like)."""
    low, high = _limit(schema, fewest, program), _limit(schema, most, program)
    lines = [f"{indent}if len(x) < {low}: return False"] if low else []
    return lines + ([f"{indent}if len(x) > {high}: return False"] if high else [])


def _number_lines(schema: dict[str, Any], program: _Program) -> list[str]:
    low, high = _limit(schema, "minimum", program), _limit(schema, "maximum", program)
    if low is None and high is None:
        return []
    # Written as jsonschema writes the failure (`instance < minimum`), so NaN agrees.
    below = "<=" if schema.get("exclusiveMinimum", False) else "<"
    above = ">=" if schema.get("exclusiveMaximum", False) else ">"
    lines = ["if isinstance(x, (int, float, Number)) and not isinstance(x, bool):"]
    lines += [f"    if x {below} {low}: return False"] if low else []
    return lines + ([f"    if x {above} {high}: return False"] if high else [])


def _string_lines(schema: dict[str, Any], program: _Program) -> list[str]:
    pattern = schema.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise _Declined
    lines = _sizes(schema, program, "minLength", "maxLength", "    ")
    if pattern is not None:  # jsonschema uses re.search
        lines.append(f"    if {program.value(re.compile(pattern).search)}(x) is None: return False")
    return ["if isinstance(x, str):", *lines] if lines else []


def _array_lines(schema: dict[str, Any], program: _Program) -> list[str]:
    lines = _sizes(schema, program, "minItems", "maxItems", "    ")
    if "items" in schema:
        lines += ["    for item in x:", f"        if not {program.function(schema['items'])}(item): return False"]
    return ["if isinstance(x, list):", *lines] if lines else []


def _object_lines(schema: dict[str, Any], program: _Program) -> list[str]:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list):
        raise _Declined
    lines = _sizes(schema, program, "minProperties", "maxProperties", "    ")
    if required:
        lines.append(f"    if not x.keys() >= {program.value(frozenset(required))}: return False")
    # additionalProperties: a schema checks the other members, `false` forbids them, anything
    # else (true, or a stray value jsonschema ignores) allows them.
    other = program.function(extra) if isinstance(extra, dict) else None
    if properties or other is not None or extra is False:
        known = program.table({name: program.function(sub) for name, sub in properties.items()})
        lines += ["    for name, value in x.items():", f"        check = {known}.get(name)"]
        if other is not None:
            lines.append(f"        if not (check or {other})(value): return False")
        elif extra is False:
            lines.append("        if check is None or not check(value): return False")
        else:
            lines.append("        if check is not None and not check(value): return False")
    return ["if isinstance(x, dict):", *lines] if lines else []

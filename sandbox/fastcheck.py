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
from functools import reduce
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
_TYPES: dict[str, Check] = {
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "number": lambda x: isinstance(x, int | float | Number) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "array": lambda x: isinstance(x, list),
    "object": lambda x: isinstance(x, dict),
}


def fast_check(schema: Any) -> Check | None:
    """A predicate that is True exactly when `OAS30Validator(schema)` finds no error, built from
    plain Python; None when the schema uses a keyword it does not model (see `_DECLINED`).

    It assumes no format checker (as `_compile` builds the validators): `format` only matters to
    `type: string, format: binary`, which also admits bytes. Unknown keywords are ignored, as
    jsonschema ignores them."""
    try:
        return _check(schema)
    except (_Declined, re.error):
        return None


def _check(schema: Any) -> Check:
    if not isinstance(schema, dict) or not _DECLINED.isdisjoint(schema):
        raise _Declined
    parts = (_type_check, _enum_check, _number_check, _string_check, _array_check, _object_check)
    checks = [check for check in (part(schema) for part in parts) if check is not None]
    return reduce(_both, checks) if checks else _anything


def _both(first: Check, second: Check) -> Check:
    return lambda x: first(x) and second(x)  # cheaper than all() over a generator


def _anything(instance: Any) -> bool:
    return True


def _type_check(schema: dict[str, Any]) -> Check | None:
    if "type" not in schema:
        return None
    name = schema["type"]
    if not isinstance(name, str) or name not in _TYPES:
        raise _Declined  # jsonschema raises UnknownType
    is_type = _TYPES[name]
    nullable = schema.get("nullable") is True
    binary = name == "string" and schema.get("format") == "binary"
    if not (nullable or binary):
        return is_type
    return lambda x: is_type(x) or (nullable and x is None) or (binary and isinstance(x, bytes))


def _enum_check(schema: dict[str, Any]) -> Check | None:
    if "enum" not in schema:
        return None
    enum = schema["enum"]
    # jsonschema compares with its `equal` (1 == 1.0, True != 1, deep for lists); only strings
    # and null, which compare plainly, are modelled.
    if not isinstance(enum, list) or not all(item is None or isinstance(item, str) for item in enum):
        raise _Declined
    strings = frozenset(item for item in enum if item is not None)
    null = None in enum
    return lambda x: (isinstance(x, str) and x in strings) or (null and x is None)


def _limit(schema: dict[str, Any], keyword: str) -> Any:
    value = schema.get(keyword)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise _Declined  # jsonschema would compare with it and raise TypeError
    return value


def _number_check(schema: dict[str, Any]) -> Check | None:
    minimum, maximum = _limit(schema, "minimum"), _limit(schema, "maximum")
    if minimum is None and maximum is None:
        return None
    low_open, high_open = bool(schema.get("exclusiveMinimum", False)), bool(schema.get("exclusiveMaximum", False))

    # Written as jsonschema writes the failure (`instance < minimum`), negated, so NaN agrees.
    def check(x: Any) -> bool:
        if isinstance(x, bool) or not isinstance(x, int | float | Number):  # int | float: skip the ABC
            return True
        if minimum is not None and (x <= minimum if low_open else x < minimum):
            return False
        return maximum is None or not (x >= maximum if high_open else x > maximum)

    return check


def _string_check(schema: dict[str, Any]) -> Check | None:
    shortest, longest = _limit(schema, "minLength"), _limit(schema, "maxLength")
    pattern = schema.get("pattern")
    if shortest is None and longest is None and pattern is None:
        return None
    if pattern is not None and not isinstance(pattern, str):
        raise _Declined
    search = re.compile(pattern).search if pattern is not None else None  # jsonschema uses re.search

    def check(x: Any) -> bool:
        if not isinstance(x, str):
            return True
        if (shortest is not None and len(x) < shortest) or (longest is not None and len(x) > longest):
            return False
        return search is None or search(x) is not None

    return check


def _array_check(schema: dict[str, Any]) -> Check | None:
    fewest, most = _limit(schema, "minItems"), _limit(schema, "maxItems")
    item = _check(schema["items"]) if "items" in schema else None
    if fewest is None and most is None and item is None:
        return None

    def check(x: Any) -> bool:
        if not isinstance(x, list):
            return True
        if (fewest is not None and len(x) < fewest) or (most is not None and len(x) > most):
            return False
        return item is None or all(item(value) for value in x)

    return check


def _object_check(schema: dict[str, Any]) -> Check | None:
    fewest, most = _limit(schema, "minProperties"), _limit(schema, "maxProperties")
    raw_properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(raw_properties, dict) or not isinstance(required, list):
        raise _Declined
    if (
        not (raw_properties or required or extra is False or isinstance(extra, dict))
        and fewest is None
        and most is None
    ):
        return None
    properties = {name: _check(sub) for name, sub in raw_properties.items()}
    # additionalProperties: a schema checks the other members, `false` forbids them, anything
    # else (true, or a stray value jsonschema ignores) allows them.
    other = _check(extra) if isinstance(extra, dict) else None
    closed = extra is False

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        if (fewest is not None and len(x) < fewest) or (most is not None and len(x) > most):
            return False
        if any(name not in x for name in required):
            return False
        for name, value in x.items():
            known = properties.get(name)
            if known is not None:
                if not known(value):
                    return False
            elif closed or (other is not None and not other(value)):
                return False
        return True

    return check

"""The bundled contract: loaded and checked once at start, one compiled validator per operation.

OpenAPI 3.0 schemas are not plain JSON Schema (`nullable`, `example`, `format` differ). Bodies and
parameters are checked in two steps:

- a plain-Python predicate compiled from the schema (`fast_check`) answers "valid?" in a few
  microseconds; it models only the keywords our contracts use and declines any other schema;
- only when it says no (or declined) does the jsonschema validator run, to word the error.

The validator class is `OAS30Validator` below: openapi-schema-validator's OAS 3.0 class rebuilt on
jsonschema's Draft 4 keywords, so that starting the server does not import that library (and the
pydantic settings it loads). Its keywords are the library's, word for word; schemas with a
`discriminator`, the one thing not rebuilt, are handed to the library itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, reduce
from numbers import Number
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft4Validator, validators
from jsonschema.exceptions import FormatError, ValidationError
from jsonschema.protocols import Validator

from sandbox.errors import ConfigError, InvalidRequest, MethodNotAllowed, NotFound

Check = Callable[[Any], bool]

# -- the OAS 3.0 validator class -------------------------------------------------------------------
#
# openapi-schema-validator 0.6+ builds OAS30Validator from jsonschema's own keyword functions (the
# same objects Draft4Validator uses) plus the OAS ones re-implemented here: `type` (nullable),
# `required` (readOnly/writeOnly), `additionalProperties`, `items`, `format`. The keywords it
# declares but does not implement (`readOnly`, `example`, ...) are simply left out: jsonschema
# ignores a keyword it has no function for, which is what `not_implemented` did. `pattern` is
# jsonschema's `re.search`, as in the library unless the optional `regress` package (ECMA regexes)
# is installed; it is not a dependency of the sandbox.

_enum_keyword = Draft4Validator.VALIDATORS["enum"]
_string_sets: dict[int, tuple[list[Any], frozenset[str]]] = {}


def _enum(
    validator: Validator, enums: list[Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """`enum` with a hashed lookup for strings: the 180-code currency list costs one set probe
    instead of 180 `equal()` calls. Anything else takes jsonschema's own path."""
    if isinstance(instance, str):
        cached = _string_sets.get(id(enums))
        if cached is None or cached[0] is not enums:
            cached = _string_sets[id(enums)] = (enums, frozenset(e for e in enums if isinstance(e, str)))
        if instance in cached[1]:
            return
    yield from _enum_keyword(validator, enums, instance, schema)


def _type(validator: Validator, data_type: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if instance is None:
        if schema.get("nullable") is True:
            return
        yield ValidationError("None for not nullable")
    if data_type == "string" and schema.get("format") == "binary" and isinstance(instance, bytes):
        return
    if not validator.is_type(instance, data_type):
        yield ValidationError(f"{instance!r} is not of type {data_type!r}")


def _required(
    validator: Validator, required: list[str], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for name in required:
        if name not in instance:
            prop = schema.get("properties", {}).get(name)
            if prop and (prop.get("readOnly", False) or prop.get("writeOnly", False)):
                continue
            yield ValidationError(f"{name!r} is a required property")


def _additional_properties(
    validator: Any, extra: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = "|".join(schema.get("patternProperties", {}))
    extras = {name for name in instance if name not in properties and not (patterns and re.search(patterns, name))}
    if not extras:
        return
    if validator.is_type(extra, "object"):
        for name in extras:
            yield from validator.descend(instance[name], extra, path=name)
    elif validator.is_type(extra, "boolean") and not extra:
        names = ", ".join(repr(name) for name in extras)
        verb = "was" if len(extras) == 1 else "were"
        yield ValidationError(f"Additional properties are not allowed ({names} {verb} unexpected)")


def _items(validator: Any, items: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "array"):
        return
    for index, item in enumerate(instance):
        yield from validator.descend(item, items, path=index)


def _format(validator: Any, format: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if instance is None or validator.format_checker is None:
        return
    try:
        validator.format_checker.check(instance, format)
    except FormatError as error:
        yield ValidationError(str(error), cause=error.cause)


_SHARED_KEYWORDS = (
    "$ref", "allOf", "anyOf", "maxItems", "maxLength", "maxProperties", "maximum", "minItems", "minLength",
    "minProperties", "minimum", "multipleOf", "not", "oneOf", "pattern", "properties", "uniqueItems",
)  # fmt: skip
OAS30Validator: type[Validator] = validators.create(
    meta_schema=Draft4Validator.META_SCHEMA,
    validators={
        **{name: Draft4Validator.VALIDATORS[name] for name in _SHARED_KEYWORDS},
        "enum": _enum,
        "type": _type,
        "required": _required,
        "additionalProperties": _additional_properties,
        "items": _items,
        "format": _format,
    },
    type_checker=Draft4Validator.TYPE_CHECKER.remove("null"),
    format_checker=Draft4Validator.FORMAT_CHECKER,
    id_of=lambda schema: schema.get("id", "") if isinstance(schema, dict) else "",
)


@cache
def _library_validator() -> Any:
    """openapi-schema-validator's own class, for a schema with a `discriminator` (its handling of
    one rides on jsonschema internals not worth copying). Imported only then: it is slow to load."""
    from openapi_schema_validator import OAS30Validator as library

    return validators.extend(library, {"enum": _enum})  # type: ignore[no-untyped-call]


# -- the fast path ---------------------------------------------------------------------------------


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


# -- operations ------------------------------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]{1,15}")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    required: bool
    type: str | None
    default: Any
    validator: Validator
    fast: Check | None = None  # `fast_check` of the validator's schema


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    template: str
    params: tuple[Param, ...]
    body: Validator | None
    fast_body: Check | None = None  # `fast_check` of the body schema

    def parse_params(self, path: dict[str, str], query: dict[str, str]) -> dict[str, Any]:
        """Coerce path and query strings to their declared types and validate them."""
        values: dict[str, Any] = {}
        for param in self.params:
            raw = (path if param.location == "path" else query).get(param.name)
            if raw is None:
                if param.required:
                    raise InvalidRequest("parameter_missing", f"{param.name} is required.", param.name)
                if param.default is not None:
                    values[param.name] = param.default
                continue
            value: Any = raw
            if param.type == "integer":
                if not _INTEGER.fullmatch(raw):
                    raise InvalidRequest(
                        "parameter_invalid", f"{param.name} must be an integer, got {raw[:40]!r}.", param.name
                    )
                value = int(raw)
            if param.fast is None or not param.fast(value):
                problem = next(param.validator.iter_errors(value), None)
                if problem is not None:
                    raise InvalidRequest("parameter_invalid", f"{param.name}: {_say(problem)}", param.name)
            values[param.name] = value
        return values

    def check_body(self, body: Any) -> None:
        if self.body is None or (self.fast_body is not None and self.fast_body(body)):
            return
        problem = next(self.body.iter_errors(body), None)
        if problem is not None:
            raise _body_error(problem)


def _say(error: ValidationError) -> str:
    if error.validator == "enum":
        choices: Any = error.validator_value
        shown = ", ".join(map(str, choices[:8])) + (", ..." if len(choices) > 8 else "")
        return f"must be one of {shown}."
    message = str(error.message)
    return message if len(message) <= 200 else message[:200] + "..."


def _body_error(error: ValidationError) -> InvalidRequest:
    path = ".".join(str(part) for part in error.absolute_path)
    # The stubs type these as possibly unset; a raised ValidationError always has them.
    instance: Any = error.instance
    value: Any = error.validator_value
    schema: Any = error.schema
    if error.validator == "required":
        missing = [name for name in value if name not in instance]
        return InvalidRequest("parameter_missing", f"{missing[0]} is required.", missing[0])
    if error.validator == "additionalProperties" and not path:
        unknown = sorted(set(instance) - set(schema.get("properties", {})))
        return InvalidRequest("parameter_unknown", f"Received unknown parameter: {unknown[0][:100]}.", unknown[0][:100])
    if error.validator == "type" and not path:
        return InvalidRequest("invalid_body", "The request body must be a JSON object.")
    return InvalidRequest("parameter_invalid", f"{path}: {_say(error)}", path or None)


class Contract:
    """The OpenAPI document and everything compiled from it."""

    def __init__(self, document: dict[str, Any], raw: bytes, source: Path) -> None:
        self.document = document
        self.source = source
        self.fingerprint = hashlib.sha256(raw).hexdigest()
        servers = document.get("servers") or [{"url": "/"}]
        self.prefix = urlsplit(servers[0]["url"]).path.rstrip("/")
        self.operations: dict[str, Operation] = {}
        self._routes: list[tuple[re.Pattern[str], dict[str, Operation]]] = []
        for template, item in document["paths"].items():
            by_method: dict[str, Operation] = {}
            for method in HTTP_METHODS:
                if method in item:
                    op = _compile(template, method.upper(), item, document)
                    self.operations[op.id] = op
                    by_method[op.method] = op
            pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
            regex = re.compile(re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", pattern))
            self._routes.append((regex, by_method))

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The operation for `path` (relative to the prefix), or NotFound / MethodNotAllowed."""
        for regex, by_method in self._routes:
            found = regex.fullmatch(path)
            if found:
                op = by_method.get(method)
                if op is None:
                    raise MethodNotAllowed(method, sorted(by_method))
                return op, found.groupdict()
        raise NotFound("not_found", f"No route {method} {self.prefix}{path[:200]}.")


def _compile(template: str, method: str, item: dict[str, Any], document: dict[str, Any]) -> Operation:
    spec = item[method.lower()]

    def validator(schema: dict[str, Any]) -> Validator:
        # References are inlined once here: resolving a $ref on every request cost more than
        # the rest of the validation together.
        inlined = _inline(schema, document, ())
        # A crude search: a false hit only costs importing the library.
        cls = _library_validator() if '"discriminator":' in json.dumps(inlined) else OAS30Validator
        compiled: Validator = cls(inlined)
        return compiled

    params = []
    for raw in item.get("parameters", []) + spec.get("parameters", []):
        param = _deref(raw, document)
        if param["in"] not in ("path", "query"):
            continue  # headers (Idempotency-Key) are read by the endpoints themselves
        schema = _deref(param.get("schema", {}), document)
        checker = validator(schema)
        params.append(
            Param(
                name=param["name"],
                location=param["in"],
                required=bool(param.get("required")),
                type=schema.get("type"),
                default=schema.get("default"),
                validator=checker,
                fast=fast_check(checker.schema),
            )
        )
    body = fast_body = None
    content = spec.get("requestBody", {}).get("content", {}).get("application/json")
    if content and "schema" in content:
        body = validator(content["schema"])
        fast_body = fast_check(body.schema)
    op_id = spec.get("operationId") or f"{method} {template}"
    return Operation(op_id, method, template, tuple(params), body, fast_body)


def _inline(node: Any, document: dict[str, Any], seen: tuple[str, ...]) -> Any:
    """A copy of `node` with every local `$ref` replaced by its target."""
    if isinstance(node, list):
        return [_inline(item, document, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            raise ConfigError(f"recursive schema {ref} in a request; the sandbox validates only non-recursive ones")
        return _inline(_deref(node, document), document, (*seen, ref))
    return {key: _inline(value, document, seen) for key, value in node.items()}


def _deref(node: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def load_contract(path: Path, *, check_document: bool = True) -> Contract:
    """Load and compile the contract. `check_document=False` skips the OpenAPI meta-validation
    (about 150 ms of start time); the bundled document is meta-validated by the test suite."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the OpenAPI document ({exc.strerror}); pass --spec PATH to a readable file."
        ) from exc
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); fix the file or pass --spec PATH to another one.") from exc
    if check_document:
        from openapi_spec_validator import validate as validate_document

        try:
            validate_document(document)
        except Exception as exc:  # the validator raises several unrelated types for a bad document
            first = str(exc).splitlines()[0]
            raise ConfigError(f"{path}: not a valid OpenAPI 3 document: {first}; fix it or drop --spec.") from exc
    try:
        return Contract(document, raw, path)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: the sandbox cannot use this document ({exc!r}); fix it or drop --spec.") from exc

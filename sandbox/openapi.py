"""The bundled contract: loaded and checked once at start, one compiled validator per operation.

OpenAPI 3.0 schemas are not plain JSON Schema (`nullable`, `example`, `format` differ), so bodies
and parameters are checked with `OAS30Validator` from openapi-schema-validator, a jsonschema
validator class that speaks the 3.0 dialect, instead of a hand-written translation. Every request
first meets a predicate compiled from the same schema at start (`fastcheck.py`); only when it says
no does the validator run, to find and word the error. So the validators are built when first
needed (`LazyValidator`): importing jsonschema and openapi-schema-validator (which loads pydantic)
is half of the sandbox's start-up, and a run of valid requests never pays for it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sandbox.errors import ConfigError, InvalidRequest, MethodNotAllowed, NotFound
from sandbox.fastcheck import Check, fast_check

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator


@cache
def validator_class() -> Any:
    """openapi-schema-validator's `OAS30Validator`, imported on first need."""
    from openapi_schema_validator import OAS30Validator

    return OAS30Validator


class LazyValidator:
    """The jsonschema validator of one schema, built on first use (see the module docstring)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._built: Validator | None = None

    def _validator(self) -> Validator:
        if self._built is None:
            self._built = validator_class()(self.schema)
        return self._built

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        return self._validator().iter_errors(instance)


_INTEGER = re.compile(r"-?[0-9]{1,15}")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    required: bool
    type: str | None
    default: Any
    validator: LazyValidator
    fast: Check | None = None  # `fast_check` of the validator's schema


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    template: str
    params: tuple[Param, ...]
    body: LazyValidator | None
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
    schema: Any = error.schema
    if error.instance is None and isinstance(schema, dict) and isinstance(schema.get("type"), str):
        return f"null is not of type {schema['type']!r}"  # the 3.0 validator's own words: "None for not nullable"
    message = str(error.message)
    # jsonschema words the value as Python (`True`, `None`, `'text'`); the client sent JSON.
    python = repr(error.instance)
    if message.startswith(python):
        message = json_text(error.instance) + message[len(python) :]
    return message if len(message) <= 200 else message[:200] + "..."


def json_text(value: Any, limit: int = 100) -> str:
    """A value as JSON text, cut to `limit` characters, for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


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

    def validator(schema: dict[str, Any]) -> LazyValidator:
        # References are inlined once here: resolving a $ref on every request cost more than
        # the rest of the validation together.
        return LazyValidator(_inline(schema, document, ()))

    params = []
    for raw in item.get("parameters", []) + spec.get("parameters", []):
        param = deref(raw, document)
        if param["in"] not in ("path", "query"):
            continue  # headers (Idempotency-Key) are read by the endpoints themselves
        schema = deref(param.get("schema", {}), document)
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
        return _inline(deref(node, document), document, (*seen, ref))
    return {key: _inline(value, document, seen) for key, value in node.items()}


def deref(node: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """The object a local `$ref` (`#/a/b`) points at, following chains; `node` itself if it has none.

    Public because the tests read the contract the same way the sandbox does."""
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
    version = document.get("openapi") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith("3."):
        raise ConfigError(
            f"{path}: not an OpenAPI 3 document (no `openapi: 3.x` field at the top); "
            "pass --spec PATH to an OpenAPI 3.0 or 3.1 document, or drop --spec for the bundled one."
        )
    if check_document:
        from openapi_spec_validator import validate as validate_document

        try:
            validate_document(document)
        except Exception as exc:  # the validator raises several unrelated types for a bad document
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ConfigError(f"{path}: not a valid OpenAPI 3 document: {first}; fix it or drop --spec.") from exc
    try:
        return Contract(document, raw, path)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, re.error, RecursionError) as exc:
        raise ConfigError(
            f"{path}: the sandbox cannot use this document ({type(exc).__name__}: {str(exc)[:200]}); "
            "fix it or drop --spec."
        ) from exc

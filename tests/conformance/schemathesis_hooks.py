"""schemathesis hooks for the conformance run, loaded by the CLI through `SCHEMATHESIS_HOOKS`.

Two jobs, both as narrow as they can be:

1. `before_call` gives every request that carries a valid Idempotency-Key that was already sent
   a fresh key of the same length (so boundary probes stay boundary probes). The generator draws
   keys from a tiny space ("0", "00"...), so without this hundreds of unrelated requests share a
   key and the sandbox rightly answers 400 `idempotency_error` (the contract: a key replays the
   first request made with it). Invalid keys (empty, over 255 characters) and coverage probes of
   other headers are left alone, so negative cases still test them. Keys are fresh within one
   run only: each run must be a new tenant (the test signs a JWT with a new `sub`).

2. `filter_failure` drops a "schema-valid request rejected" (ST202) failure only when the
   response is a 400 whose error code is one of

   - BUSINESS_RULES: money rules that depend on the charge's state, not on the request's shape
     (refund more than what is left, refund a charge refunded in full or not succeeded). The
     stateful phase refunds the same charge many times, so these are reached; no schema can
     express them and the contract documents them as 400 "the request is invalid, or the
     processor declined it". These are not findings.
   - KNOWN_FINDINGS: rules of the API that OpenAPI 3.0 cannot state in a schema, so schemathesis
     takes a request breaking them for valid data; test_contract_findings.py checks each one is
     described in the contract and enforced by the sandbox.

Every call and every dropped failure is appended, as JSON lines, to the file named by
`CONFORMANCE_LOG`, so the pytest test can check what was exercised and what was dropped.
"""

from __future__ import annotations

import itertools
import json
import os
import string
from collections.abc import Callable
from typing import Any

import schemathesis

BUSINESS_RULES = frozenset({"amount_too_large", "charge_already_refunded", "charge_not_refundable"})
KNOWN_FINDINGS: dict[str, Callable[[dict[str, Any], Any], bool]] = {
    # The contract says "keys of at most 40 characters" only in prose (OpenAPI 3.0 has no
    # propertyNames); the sandbox enforces it, so a schema-valid longer key gets a 400.
    "metadata_key_length_not_in_schema": lambda error, sent_body: (
        error.get("code") == "parameter_invalid"
        and error.get("param") == "metadata"
        and "over 40 characters" in str(error.get("message"))
    ),
}

_serial = itertools.count()


def _log(record: dict[str, Any]) -> None:
    path = os.environ.get("CONFORMANCE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def _probes_another_header(case: Any) -> bool:
    """Whether this is a coverage-phase probe of a header other than Idempotency-Key.

    Such cases are left exactly as generated: editing any header makes schemathesis re-judge the
    case from the declared headers alone, which turns a missing-Authorization probe positive and
    then sends the CLI's Authorization header after all.
    """
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    parameter = str(getattr(data, "parameter", None) or "")
    return getattr(data, "parameter_location", None) == "header" and parameter.lower() != "idempotency-key"


_ALPHABET = string.digits + string.ascii_letters
_used_keys: set[str] = set()


def _fresh_key(length: int) -> str:
    """A key never sent before, of `length` characters when that many can still be unique."""
    while True:
        serial, digits = next(_serial), []
        while True:
            serial, digit = divmod(serial, len(_ALPHABET))
            digits.append(_ALPHABET[digit])
            if not serial:
                break
        text = "".join(reversed(digits))
        key = text.rjust(length, "k") if len(text) <= length else text[:255]
        if key not in _used_keys:
            return key


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if _probes_another_header(case):
        return
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and 1 <= len(value) <= 255:
            if value in _used_keys:
                # Same length, so a boundary probe (1 or 255 characters) still probes the boundary.
                value = headers[name] = _fresh_key(len(value))
            _used_keys.add(value)


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    meta = getattr(case, "meta", None)
    mode = meta.generation.mode.value if meta is not None else "unknown"
    _log({"event": "call", "operation": case.operation.label, "mode": mode, "status": response.status_code})


def _error_of(response: Any) -> dict[str, Any]:
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return {}
    return error if isinstance(error, dict) else {}


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if failure.code != "ST202" or response.status_code != 400:
        return True
    error = _error_of(response)
    sent_body = getattr(response.request, "body", None)
    reason = None
    if error.get("code") in BUSINESS_RULES:
        reason = "business_rule"
    else:
        reason = next((name for name, matches in KNOWN_FINDINGS.items() if matches(error, sent_body)), None)
    if reason is None:
        return True
    _log({"event": "dropped", "reason": reason, "operation": case.operation.label, "error": error})
    return False

"""The Payments API under the contract's server path: thin async endpoints over `Payments`.

One ASGI callable serves every path under the prefix, dispatching on the contract's own routes,
so that unknown paths and wrong methods there get the same envelope, Request-Id and journal
entry as every other API call.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox.auth import tenant_of
from sandbox.errors import ApiError, InvalidRequest, PayloadTooLarge, UnsupportedMedia
from sandbox.models import rfc3339
from sandbox.openapi import Contract, Operation
from sandbox.payments import Attempt, Payments, Reply
from sandbox.settings import Settings
from sandbox.store import Journal

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JOURNAL_BODY_LIMIT = 8192


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """The one way a JSON body goes on the wire."""
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status, headers, media_type="application/json")


def error_response(error: ApiError) -> Response:
    return json_response(error.status, error.body(), error.headers)


class PaymentsAPI:
    def __init__(self, contract: Contract, payments: Payments, journal: Journal, settings: Settings) -> None:
        self.contract = contract
        self.payments = payments
        self.journal = journal
        self.settings = settings
        self.handlers = {
            "postCreateCharge": self.create_charge,
            "getGetCharge": self.get_charge,
            "getListCharges": self.list_charges,
            "postCreateRefund": self.create_refund,
        }
        missing = set(contract.operations) - set(self.handlers)
        if missing:
            from sandbox.errors import ConfigError

            raise ConfigError(
                f"{contract.source}: no handler for operations {sorted(missing)}; use the bundled contract."
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        started = time.time()
        path = scope["path"][len(self.contract.prefix) :]
        entry: dict[str, Any] = {"request_body": None, "tenant": None, "scenario": None}
        try:
            op, path_params = self.contract.match(request.method, path)
            entry["tenant"] = tenant = tenant_of(request.headers.get("authorization"), self.settings.jwt_secret)
            params = op.parse_params(path_params, dict(request.query_params))
            body = await self._body(request, op, entry) if op.body is not None else None
            reply = await self.handlers[op.id](request, tenant, params, body)
            response = json_response(reply.status, reply.body, reply.headers)
            if reply.scenario:
                response.headers["Sandbox-Scenario"] = reply.scenario
            entry["scenario"] = reply.scenario
            entry["response_body"] = reply.body
        except ApiError as error:
            response = error_response(error)
            entry["response_body"] = error.body()
        await response(scope, receive, send)
        entry.update(
            id=scope.get("request_id"),
            method=request.method,
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            status=response.status_code,
            started_at=rfc3339(started),
            duration_ms=round((time.time() - started) * 1000, 3),
            idempotency_key=request.headers.get("idempotency-key"),
        )
        self.journal.record(entry)

    async def _body(self, request: Request, op: Operation, entry: dict[str, Any]) -> Any:
        raw = await read_body(request, self.settings.max_body_bytes)
        if not raw.strip():
            entry["request_body"] = None
            body: Any = {}
        else:
            ctype = request.headers.get("content-type", "")
            media, _, options = ctype.partition(";")
            if media.strip().lower() != "application/json" or (
                "charset" in options.lower() and "utf-8" not in options.lower()
            ):
                raise UnsupportedMedia(
                    "unsupported_media_type",
                    f"Send the body as JSON with `Content-Type: application/json` (got {ctype[:60]!r}).",
                )
            entry["request_body"] = raw[:_JOURNAL_BODY_LIMIT].decode("utf-8", "replace")
            body = parse_json(raw)
            entry["request_body"] = body if len(raw) <= _JOURNAL_BODY_LIMIT else entry["request_body"]
        op.check_body(body)
        return body

    # -- endpoints --------------------------------------------------------------------------
    async def create_charge(self, request: Request, tenant: str, params: dict[str, Any], body: Any) -> Reply:
        return await self._write(request, tenant, "charge", body)

    async def create_refund(self, request: Request, tenant: str, params: dict[str, Any], body: Any) -> Reply:
        return await self._write(request, tenant, "refund", body)

    async def get_charge(self, request: Request, tenant: str, params: dict[str, Any], body: Any) -> Reply:
        return Reply(200, self.payments.get_charge(tenant, params["id"]))

    async def list_charges(self, request: Request, tenant: str, params: dict[str, Any], body: Any) -> Reply:
        page = self.payments.list_charges(tenant, params["limit"], params["offset"], params.get("status"))
        return Reply(200, page)

    async def _write(self, request: Request, tenant: str, kind: str, body: dict[str, Any]) -> Reply:
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 255:
            raise InvalidRequest("parameter_invalid", "Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")
        outcome = self.payments.begin(tenant, kind, body, key)
        if isinstance(outcome, Reply):
            return outcome
        return await self._finish(outcome)

    async def _finish(self, attempt: Attempt) -> Reply:
        if attempt.delay:
            try:
                await asyncio.sleep(attempt.delay)
            except BaseException:
                self.payments.abandon(attempt)
                raise
        return self.payments.finish(attempt)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("payload_too_large", f"The body is over the {limit} byte limit.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("payload_too_large", f"The body is over the {limit} byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidRequest("invalid_json", f"The body repeats the key {duplicate[:40]!r}.", duplicate[:40])
    return result


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, no overflowing numbers."""
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, object_pairs_hook=_unique, parse_float=_finite, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("invalid_json", f"The body is not valid UTF-8 (byte {exc.start}).") from exc
    except RecursionError as exc:
        raise InvalidRequest("invalid_json", "The body is nested too deeply.") from exc
    except ValueError as exc:
        raise InvalidRequest("invalid_json", f"The body is not valid JSON: {str(exc)[:200]}.") from exc
    if _SURROGATE_ESCAPE.search(text):
        try:
            _check_unicode(body, "")
        except RecursionError as exc:
            raise InvalidRequest("invalid_json", "The body is nested too deeply.") from exc
    return body


def _check_unicode(value: Any, where: str) -> None:
    """Reject lone UTF-16 surrogates (`"\\ud800"`): they cannot be stored or sent back as UTF-8."""
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key in value:  # keys first: a value's path is made of its keys
            _check_unicode(key, where)
        items = [(f"{where}.{k}" if where else k, v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(where, v) for v in value]
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest("invalid_json", "The body has a lone UTF-16 surrogate escape.", where or None) from exc
    for path, item in items:
        _check_unicode(item, path)

"""The Payments API under the contract's server path: thin async endpoints over `Payments`.

One ASGI callable serves every path under the prefix, dispatching on the contract's own routes,
so that unknown paths and wrong methods there get the same envelope, Request-Id and journal
entry as every other API call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox.auth import Auth
from sandbox.errors import (
    ApiError,
    ConfigError,
    InternalError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMedia,
)
from sandbox.models import Entry, Kind, Reply
from sandbox.openapi import Contract
from sandbox.payments import Payments
from sandbox.settings import Settings
from sandbox.stores import StoreUnavailable

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JOURNAL_BODY_LIMIT = 8192  # bytes of each body the journal keeps
_JOURNAL_TEXT_LIMIT = 255  # characters of the path, query and Idempotency-Key it keeps
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_log = logging.getLogger("sandbox")


def to_json(body: Any) -> bytes:
    """The one way a JSON body is written: orjson (compact UTF-8) for speed, the standard library
    for what orjson refuses (integers over 64 bits, say, in a journaled request body)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return _encode(body).encode()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(body), status, headers, media_type="application/json")


def error_response(error: ApiError) -> Response:
    return json_response(error.status, error.body(), error.headers)


class ClientGone(Exception):
    """The client closed the connection before its request was read in full."""


class PaymentsAPI:
    """A plain ASGI app: the request path of every API call is short and measured (bench/)."""

    def __init__(self, contract: Contract, payments: Payments, auth: Auth, settings: Settings) -> None:
        self.contract = contract
        self.auth = auth
        self.payments = payments
        self.store = payments.store
        self.settings = settings
        self.handlers: dict[str, Handler] = {
            "postCreateCharge": self.create_charge,
            "getGetCharge": self.get_charge,
            "getListCharges": self.list_charges,
            "postCreateRefund": self.create_refund,
        }
        self.stopping = asyncio.Event()  # set on shutdown: scripted delays end at once
        self.lost_noted = -60.0  # when a journal entry lost to an unavailable store was last logged
        missing = set(contract.operations) - set(self.handlers)
        if missing:
            raise ConfigError(
                f"{contract.source}: no handler for operations {sorted(missing)}; use the bundled contract."
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started, clock = time.time(), time.perf_counter()
        method: str = scope["method"]
        authorization = ctype = length = key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                ctype = value.decode("latin-1")
            elif name == b"content-length":
                length = value
            elif name == b"idempotency-key":
                key = value.decode("latin-1")
        tenant = scenario = raw = None
        extra: dict[str, str] | None = None
        try:
            op, path_params = self.contract.match(method, scope["path"][len(self.contract.prefix) :])
            tenant = self.auth.tenant_of(authorization)
            query: bytes = scope["query_string"]
            params = op.parse_params(path_params, dict(parse_qsl(query.decode("latin-1"), True)) if query else {})
            body = None
            if op.body is not None:
                raw = await read_asgi_body(scope, receive, length, self.settings.max_body_bytes)
                body = _parse_body(raw, ctype)
                op.check_body(body)
            reply = await self.handlers[op.id](tenant, params, body, key)
            status, content, extra, scenario = reply.status, to_json(reply.body), reply.headers, reply.scenario
            if scenario:
                extra = {**extra, "Sandbox-Scenario": scenario}
        except ApiError as error:
            status, content, extra = error.status, to_json(error.body()), error.headers
        except ClientGone:
            status, content = 499, b""  # nginx's "client closed request": journaled, not answered
        except Exception:  # never expected: every input has a 4xx answer; the client still gets JSON
            _log.exception("error while answering %s %s", method, scope["path"])
            crash = InternalError()
            status, content = crash.status, to_json(crash.body())
        # Journaled before the answer goes out: a client that reads the journal as soon as it has its
        # answer (from this process or another one sharing the store) finds the call there.
        entry = Entry(
            scope.get("request_id") or "",
            tenant,
            method,
            scope["path"][:_JOURNAL_TEXT_LIMIT],
            scope["query_string"][:_JOURNAL_TEXT_LIMIT].decode("latin-1"),
            status,
            started,
            time.perf_counter() - clock,
            key[:_JOURNAL_TEXT_LIMIT] if key else None,
            scenario,
            raw[:_JOURNAL_BODY_LIMIT] if raw else None,
            content[:_JOURNAL_BODY_LIMIT],
        )
        try:
            await self.store.record(entry)
        except StoreUnavailable:  # the client still gets its answer; the entry is lost while the store is away
            # At most a line a minute: the store being away would otherwise log every request.
            if time.monotonic() - self.lost_noted >= 60:
                self.lost_noted = time.monotonic()
                _log.warning("the store is unavailable: journal entries are being lost")
        if status != 499:
            try:
                await send_json(send, status, content, scope.get("request_id"), extra)
            except Exception:  # never expected: scenario headers are checked when loaded
                _log.exception("error while answering %s %s", method, scope["path"][:200])
                await send_json(send, 500, to_json(InternalError().body()), scope.get("request_id"))

    # -- endpoints --------------------------------------------------------------------------
    async def create_charge(self, tenant: str, params: dict[str, Any], body: Any, key: str | None) -> Reply:
        return await self._write(tenant, Kind.CHARGE, body, key)

    async def create_refund(self, tenant: str, params: dict[str, Any], body: Any, key: str | None) -> Reply:
        return await self._write(tenant, Kind.REFUND, body, key)

    async def get_charge(self, tenant: str, params: dict[str, Any], body: Any, key: str | None) -> Reply:
        return Reply(200, await self.payments.get_charge(tenant, params["id"]))

    async def list_charges(self, tenant: str, params: dict[str, Any], body: Any, key: str | None) -> Reply:
        page = await self.payments.list_charges(tenant, params["limit"], params["offset"], params.get("status"))
        return Reply(200, page)

    async def _write(self, tenant: str, kind: Kind, body: dict[str, Any], key: str | None) -> Reply:
        if key is not None and not 1 <= len(key) <= 255:
            raise InvalidRequest("parameter_invalid", "Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")
        outcome = await self.payments.begin(tenant, kind, body, key)
        if isinstance(outcome, Reply):
            return outcome
        if outcome.delay:
            try:
                await asyncio.wait_for(self.stopping.wait(), outcome.delay)
            except TimeoutError:
                pass  # the delay ran its course
            except BaseException:
                await self.payments.abandon(outcome)
                raise
        return await self.payments.finish(outcome)


Handler = Callable[[str, dict[str, Any], Any, "str | None"], Awaitable[Reply]]


def _parse_body(raw: bytes, ctype: str | None) -> Any:
    """The JSON body; an empty one is an empty object, so the schema names what is missing."""
    if not raw.strip():
        return {}
    media, _, options = (ctype or "").partition(";")
    if media.strip().lower() != "application/json" or ("charset" in options.lower() and "utf-8" not in options.lower()):
        raise UnsupportedMedia(
            "unsupported_media_type",
            f"Send the body as JSON with `Content-Type: application/json` (got {(ctype or '')[:60]!r}).",
        )
    return parse_json(raw)


async def send_json(
    send: Send, status: int, content: bytes, request_id: str | None, headers: dict[str, str] | None = None
) -> None:
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    if request_id:
        raw_headers.append((b"request-id", request_id.encode()))
    if headers:
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})


# Set in the scope by the server (server.py) when a request's body has stalled for --header-timeout
# seconds; the read below then answers 408. (A timeout per read here would cost every POST a timer.)
BODY_STALLED = "sandbox.body_stalled"


async def read_asgi_body(scope: Scope, receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over `limit` bytes, and with 408 when
    the server says it stalled (a client trickling a body would otherwise hold its connection)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("payload_too_large", f"The body is over the {limit} byte limit.")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("payload_too_large", f"The body is over the {limit} byte limit.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if BODY_STALLED in scope:
            raise RequestTimeout(scope[BODY_STALLED])


async def read_body(request: Request, settings: Settings) -> bytes:
    """A Starlette request's body (control API, dashboard), with the API's limits."""
    declared = request.headers.get("content-length")
    raw = declared.encode("latin-1") if declared else None
    return await read_asgi_body(request.scope, request.receive, raw, settings.max_body_bytes)


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


_decoder = json.JSONDecoder(object_pairs_hook=_unique, parse_float=_finite, parse_constant=_no_constant)


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, no overflowing numbers."""
    try:
        text = raw.decode("utf-8")
        body = _decoder.decode(text)
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

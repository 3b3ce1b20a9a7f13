"""JSON and bodies on the wire, shared by the API, the control API and the dashboard: reading a
body within its limits, strict JSON parsing, writing JSON, and rendering errors to the envelope.
Nothing here knows the Payments API, so the control API and the dashboard do not import its path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from sandbox.errors import (
    ApiError,
    ClientGone,
    InternalError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
)
from sandbox.settings import Settings

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def to_json(body: Any) -> bytes:
    """The one way a JSON body is written: orjson (compact UTF-8) for speed, the standard library
    for what orjson refuses (integers over 64 bits, say, in a journaled request body)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return _encode(body).encode()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(body), status, headers, media_type="application/json")


def render(error: BaseException) -> tuple[ApiError, bytes]:
    """The one way an exception becomes what the client gets: an ApiError as its envelope; anything
    else, a bug, as a 500 `internal_error` envelope (whoever answers it raises the bug again after,
    so that the server logs it and an in-process test client fails the test). A client that left
    gets nothing."""
    known = error if isinstance(error, ApiError) else InternalError()
    return known, b"" if isinstance(known, ClientGone) else to_json(known.body())


def error_response(error: BaseException) -> Response:
    """`render` as a Starlette response (control API, dashboard, routing errors)."""
    known, content = render(error)
    return Response(content, known.status, known.headers, media_type="application/json")


async def send_json(
    send: Send, status: int, content: bytes, request_id: str | None, headers: dict[str, str] | None = None
) -> None:
    await send(head(status, len(content), request_id, headers))
    await send({"type": "http.response.body", "body": content})


def head(status: int, length: int, request_id: str | None, headers: dict[str, str] | None = None) -> Message:
    """The status line and headers of a JSON answer of `length` bytes, as the message to send."""
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(length).encode())]
    if request_id:
        raw_headers.append((b"request-id", request_id.encode()))
    if headers:
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return {"type": "http.response.start", "status": status, "headers": raw_headers}


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
    body = _plain_json(raw)
    if body is not _NOT_PLAIN:
        return body
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


_NOT_PLAIN: Any = object()


def _plain_json(raw: bytes) -> Any:
    """The body parsed by orjson when that is exactly what the strict parser below would give, else
    _NOT_PLAIN: orjson refuses what the strict parser refuses (bad UTF-8, lone surrogates, NaN,
    numbers out of a double's range, nesting over 1,024 levels), but keeps the last of repeated
    keys and turns integers over 64 bits into floats. So a body with any float goes the strict way,
    and so does one whose keys number fewer than its colons: each key has a colon, so equal counts
    mean no colon inside a string and no key lost to a repeat. A payment's body, integers and
    plain strings, takes this path at a sixth of the cost."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _NOT_PLAIN
    keys, stack = 0, [body]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            keys += len(value)
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
        elif kind is float:
            return _NOT_PLAIN
    return body if keys == raw.count(b":") else _NOT_PLAIN


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

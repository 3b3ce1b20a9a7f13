"""A corpus of hostile requests against a real server: each is refused, stores nothing, and the
server stays healthy.

Refused means: a 4xx in the error envelope `{"error": {"code", "message", "param"}}` with a
Request-Id when the request reaches the sandbox, or, for requests that are not HTTP at all
(broken framing, an unknown method token), a 4xx from uvicorn or a closed connection. Stored
nothing means the tenant that sent it has no charges afterwards. Every request is sent as raw
bytes on its own connection, because httpx will not send most of these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from uuid import uuid4

import pytest
from sandbox_proc import RawResponse, build_request, chunked, exchange
from sandbox_server import API, HOST, SandboxProcess

VALID = b'{"amount":1500,"currency":"USD"}'
JSON_TYPE = b"application/json"
MIB = 1024 * 1024
CHUNKED = ((b"Transfer-Encoding", b"chunked"),)
FIFTY_ONE_KEYS = b",".join(b'"k%d":"v"' % i for i in range(51))


@dataclass(frozen=True)
class Hostile:
    make: Callable[[bytes], bytes]  # bearer token -> the request's bytes
    status: int | None  # the enveloped status expected; None: refused by the HTTP layer
    code: str | None = None  # the envelope's error code expected


Headers = tuple[tuple[bytes, bytes], ...]


def _headers(token: bytes, content_type: bytes | None, extra: Headers) -> list[tuple[bytes, bytes]]:
    headers = [(b"Authorization", b"Bearer " + token)]
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    return headers + list(extra)


def post(
    body: bytes,
    *,
    path: bytes = b"/charge",
    content_type: bytes | None = JSON_TYPE,
    extra: Headers = (),
    content_length: bool = True,
) -> Callable[[bytes], bytes]:
    def make(token: bytes) -> bytes:
        headers = _headers(token, content_type, extra)
        return build_request(b"POST", API.encode() + path, headers, body, content_length=content_length)

    return make


def request(method: bytes, target: bytes, extra: Headers = ()) -> Callable[[bytes], bytes]:
    def make(token: bytes) -> bytes:
        return build_request(method, target, _headers(token, None, extra))

    return make


def raw_post(head_lines: bytes, body: bytes) -> Callable[[bytes], bytes]:
    """A POST /charge whose framing headers (`head_lines`) are written by hand."""

    def make(token: bytes) -> bytes:
        return (
            b"POST " + API.encode() + b"/charge HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nConnection: close\r\n"
            b"Authorization: Bearer " + token + b"\r\nContent-Type: application/json\r\n" + head_lines + b"\r\n" + body
        )

    return make


def nested(depth: int, inner: bytes = b'"x"') -> bytes:
    return b'{"amount":1500,"currency":"USD","metadata":' + b'{"a":' * depth + inner + b"}" * depth + b"}"


CORPUS = [
    # -- malformed and truncated JSON -----------------------------------------------------------
    pytest.param(Hostile(post(b'{"amount":1500,"currency":"US'), 400, "invalid_json"), id="truncated-json"),
    pytest.param(Hostile(post(b'{"amount":1500,'), 400, "invalid_json"), id="truncated-after-comma"),
    pytest.param(Hostile(post(b"{amount: 1500, currency: USD}"), 400, "invalid_json"), id="unquoted-keys"),
    pytest.param(Hostile(post(b"{'amount': 1500, 'currency': 'USD'}"), 400, "invalid_json"), id="single-quotes"),
    pytest.param(Hostile(post(VALID + b" trailing"), 400, "invalid_json"), id="trailing-garbage"),
    pytest.param(Hostile(post(VALID + VALID), 400, "invalid_json"), id="two-documents"),
    pytest.param(Hostile(post(b'{"amount":1500,"currency":"USD",}'), 400, "invalid_json"), id="trailing-comma"),
    pytest.param(Hostile(post(b"\x00"), 400, "invalid_json"), id="nul-byte"),
    # -- encodings --------------------------------------------------------------------------------
    pytest.param(
        Hostile(post(b'{"amount":1500,"currency":"USD","description":"\xff\xfe"}'), 400, "invalid_json"),
        id="invalid-utf8",
    ),
    pytest.param(
        Hostile(post(b'{"amount":1500,"currency":"USD","description":"\xc0\xaf"}'), 400, "invalid_json"),
        id="overlong-utf8",
    ),
    pytest.param(
        Hostile(post(b'{"amount":1500,"currency":"USD","description":"\\ud800"}'), 400, "invalid_json"),
        id="lone-surrogate-escape",
    ),
    pytest.param(
        Hostile(post(b'{"amount":1500,"currency":"USD","metadata":{"\\udfff":"x"}}'), 400, "invalid_json"),
        id="lone-surrogate-in-key",
    ),
    pytest.param(Hostile(post(b"\xef\xbb\xbf" + VALID), 400, "invalid_json"), id="utf8-bom"),
    pytest.param(Hostile(post(VALID.decode().encode("utf-16")), 400, "invalid_json"), id="utf16-body"),
    # -- numbers ----------------------------------------------------------------------------------
    pytest.param(Hostile(post(b'{"amount":NaN,"currency":"USD"}'), 400, "invalid_json"), id="nan"),
    pytest.param(Hostile(post(b'{"amount":Infinity,"currency":"USD"}'), 400, "invalid_json"), id="infinity"),
    pytest.param(Hostile(post(b'{"amount":-Infinity,"currency":"USD"}'), 400, "invalid_json"), id="minus-infinity"),
    pytest.param(Hostile(post(b'{"amount":1e400,"currency":"USD"}'), 400, "invalid_json"), id="float-1e400"),
    pytest.param(Hostile(post(b'{"amount":-1e400,"currency":"USD"}'), 400, "invalid_json"), id="float-minus-1e400"),
    pytest.param(
        Hostile(post(b'{"amount":' + b"9" * 5000 + b',"currency":"USD"}'), 400, "invalid_json"), id="int-5000-digits"
    ),
    pytest.param(
        Hostile(post(b'{"amount":1' + b"0" * 100 + b',"currency":"USD"}'), 400, "parameter_invalid"), id="int-1e100"
    ),
    pytest.param(Hostile(post(b'{"amount":1500.5,"currency":"USD"}'), 400, "parameter_invalid"), id="fractional"),
    pytest.param(Hostile(post(b'{"amount":15e2,"currency":"USD"}'), 400, "parameter_invalid"), id="exponent-int"),
    pytest.param(Hostile(post(b'{"amount":1e-400,"currency":"USD"}'), 400, "parameter_invalid"), id="underflow"),
    pytest.param(Hostile(post(b'{"amount":true,"currency":"USD"}'), 400, "parameter_invalid"), id="bool-amount"),
    pytest.param(Hostile(post(b'{"amount":"1500","currency":"USD"}'), 400, "parameter_invalid"), id="string-amount"),
    pytest.param(Hostile(post(b'{"amount":-1500,"currency":"USD"}'), 400, "parameter_invalid"), id="negative"),
    pytest.param(Hostile(post(b'{"amount":0,"currency":"USD"}'), 400, "parameter_invalid"), id="zero"),
    # -- duplicate keys ---------------------------------------------------------------------------
    pytest.param(
        Hostile(post(b'{"amount":1,"amount":1500,"currency":"USD"}'), 400, "invalid_json"), id="duplicate-key"
    ),
    pytest.param(
        Hostile(post(b'{"amount":1500,"currency":"USD","metadata":{"a":"1","a":"2"}}'), 400, "invalid_json"),
        id="duplicate-nested-key",
    ),
    # -- nesting ----------------------------------------------------------------------------------
    pytest.param(Hostile(post(b"[" * 10_000 + b"]" * 10_000), 400, "invalid_json"), id="array-10k-deep"),
    pytest.param(Hostile(post(nested(10_000)), 400, "invalid_json"), id="object-10k-deep"),
    pytest.param(Hostile(post(b"[" * 200_000 + b"]" * 200_000), 400, "invalid_json"), id="array-200k-deep"),
    pytest.param(Hostile(post(b'{"a":' * 10_000 + b"1" + b"}" * 10_000), 400, "invalid_json"), id="top-10k-deep"),
    # -- wrong shapes -----------------------------------------------------------------------------
    pytest.param(Hostile(post(b"null"), 400, "invalid_body"), id="json-null"),
    pytest.param(Hostile(post(b"[]"), 400, "invalid_body"), id="json-array"),
    pytest.param(Hostile(post(b'"charge"'), 400, "invalid_body"), id="json-string"),
    pytest.param(Hostile(post(b"1500"), 400, "invalid_body"), id="json-number"),
    pytest.param(Hostile(post(b""), 400, "parameter_missing"), id="empty-body"),
    pytest.param(Hostile(post(b" \r\n\t "), 400, "parameter_missing"), id="whitespace-body"),
    pytest.param(
        Hostile(post(b'{"amount":1500,"currency":"USD","admin":true}'), 400, "parameter_unknown"), id="unknown-field"
    ),
    pytest.param(
        Hostile(post(b'{"amount":1500,"currency":"USD","__proto__":{"x":1}}'), 400, "parameter_unknown"),
        id="proto-pollution",
    ),
    pytest.param(
        Hostile(
            post(
                b'{"amount":1500,"currency":"USD","metadata":{' + b",".join(b'"k%d":"v"' % i for i in range(51)) + b"}}"
            ),
            400,
            "parameter_invalid",
        ),
        id="metadata-51-keys",
    ),
    pytest.param(
        Hostile(
            post(b'{"amount":1500,"currency":"USD","description":"' + b"d" * 1001 + b'"}'), 400, "parameter_invalid"
        ),
        id="description-too-long",
    ),
    pytest.param(Hostile(post(b'{"amount":1500,"currency":"usd"}'), 400, "parameter_invalid"), id="currency-case"),
    pytest.param(
        Hostile(post(b'{"charge_id":"' + b"c" * 10_240 + b'"}', path=b"/refund"), 400, "parameter_invalid"),
        id="refund-charge-id-10kb",
    ),
    # -- sizes and framing ------------------------------------------------------------------------
    pytest.param(
        Hostile(
            post(b'{"amount":1500,"currency":"USD","description":"' + b"x" * (2 * MIB) + b'"}'),
            413,
            "payload_too_large",
        ),
        id="body-2mib",
    ),
    pytest.param(
        Hostile(post(b" " * (MIB + 1)), 413, "payload_too_large"),
        id="body-1mib-plus-1",
    ),
    pytest.param(
        Hostile(
            post(
                chunked(*[b" " * 65536] * 24, VALID),
                extra=CHUNKED,
                content_length=False,
            ),
            413,
            "payload_too_large",
        ),
        id="chunked-body-over-1mib",
    ),
    pytest.param(
        Hostile(raw_post(b"Content-Length: 2097152\r\n", VALID), 413, "payload_too_large"),
        id="lying-content-length-large",
    ),
    pytest.param(
        Hostile(raw_post(b"Content-Length: 10\r\n", VALID), 400, "invalid_json"),
        id="lying-content-length-short",
    ),
    pytest.param(
        Hostile(raw_post(b"Content-Length: 99999999999999999999999\r\n", VALID), None),
        id="content-length-huge-number",
    ),
    pytest.param(Hostile(raw_post(b"Content-Length: abc\r\n", VALID), None), id="content-length-not-a-number"),
    pytest.param(Hostile(raw_post(b"Content-Length: -1\r\n", VALID), None), id="content-length-negative"),
    pytest.param(
        Hostile(raw_post(b"Content-Length: 31\r\nContent-Length: 5\r\n", VALID), None), id="content-length-twice"
    ),
    pytest.param(
        Hostile(raw_post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", chunked(VALID)), None),
        id="content-length-and-chunked",
    ),
    pytest.param(
        Hostile(
            post(
                chunked(b'{"amount":15', b'00,"curr'), extra=((b"Transfer-Encoding", b"chunked"),), content_length=False
            ),
            400,
            "invalid_json",
        ),
        id="chunked-truncated-json",
    ),
    # -- headers ----------------------------------------------------------------------------------
    pytest.param(Hostile(post(VALID, extra=((b"X-Padding", b"p" * 65536),)), None), id="header-64kb"),
    pytest.param(
        Hostile(post(VALID, extra=tuple((b"X-H%d" % i, b"v" * 24) for i in range(2000))), None),
        id="headers-2000",
    ),
    pytest.param(
        Hostile(post(VALID, extra=((b"Idempotency-Key", b"k" * 256),)), 400, "parameter_invalid"),
        id="idempotency-key-256",
    ),
    pytest.param(Hostile(post(VALID, extra=((b"Idempotency-Key", b""),)), 400, "parameter_invalid"), id="idem-empty"),
    pytest.param(
        Hostile(lambda token: build_request(b"POST", API.encode() + b"/charge", [], VALID), 401, "unauthorized"),
        id="no-authorization",
    ),
    pytest.param(
        Hostile(
            lambda token: build_request(b"POST", API.encode() + b"/charge", [(b"Authorization", b"Bearer ")], VALID),
            401,
            "unauthorized",
        ),
        id="bearer-without-token",
    ),
    pytest.param(
        Hostile(
            lambda token: build_request(b"POST", API.encode() + b"/charge", [(b"Authorization", b"Basic dTpw")], VALID),
            401,
            "unauthorized",
        ),
        id="basic-auth",
    ),
    # -- content types ----------------------------------------------------------------------------
    pytest.param(Hostile(post(VALID, content_type=b"text/plain"), 415, "unsupported_media_type"), id="text-plain"),
    pytest.param(
        Hostile(post(b"amount=1500&currency=USD", content_type=b"application/x-www-form-urlencoded"), 415),
        id="form-urlencoded",
    ),
    pytest.param(
        Hostile(post(b"--b\r\n\r\n1500\r\n--b--\r\n", content_type=b"multipart/form-data; boundary=b"), 415),
        id="multipart",
    ),
    pytest.param(Hostile(post(b"<charge/>", content_type=b"application/xml"), 415), id="xml"),
    pytest.param(Hostile(post(VALID, content_type=b"application/json; charset=latin-1"), 415), id="charset-latin1"),
    pytest.param(Hostile(post(VALID, content_type=b"application/json; charset=utf-16"), 415), id="charset-utf16"),
    pytest.param(Hostile(post(VALID, content_type=b"application/jsonx"), 415), id="jsonx"),
    pytest.param(Hostile(post(VALID, content_type=None), 415, "unsupported_media_type"), id="no-content-type"),
    # -- paths ------------------------------------------------------------------------------------
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charge/" + b"i" * 10_240), 400, "parameter_invalid"), id="id-10kb"
    ),
    pytest.param(Hostile(request(b"GET", API.encode() + b"/charge/" + b"i" * 70_000), None), id="path-70kb"),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charge/../../etc/passwd"), 404, "not_found"), id="dot-dot-slash"
    ),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charge/%2e%2e%2f%2e%2e%2fetc%2fpasswd"), 404, "not_found"),
        id="encoded-dot-dot-slash",
    ),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charge/..%2f..%2f..%2fetc%2fpasswd"), 404, "not_found"),
        id="encoded-slash",
    ),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charge/%2e%2e"), 404, "resource_missing"), id="encoded-dot-dot"
    ),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charge/..%5c..%5cwindows%5cwin.ini"), 404, "resource_missing"),
        id="backslashes",
    ),
    pytest.param(Hostile(request(b"GET", API.encode() + b"/charge/%00"), 404, "resource_missing"), id="nul-id"),
    pytest.param(Hostile(request(b"GET", API.encode() + b"/../../etc/passwd"), 404, "not_found"), id="above-prefix"),
    pytest.param(Hostile(request(b"GET", b"/../../../etc/passwd"), 404, "not_found"), id="above-root"),
    pytest.param(Hostile(request(b"GET", API.encode() + b"/charge/\xff\xfe"), None), id="raw-non-ascii-path"),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charges?limit=1e400"), 400, "parameter_invalid"), id="limit-1e400"
    ),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charges?offset=" + b"9" * 5000), 400, "parameter_invalid"),
        id="offset-5000-digits",
    ),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charges?limit=-1"), 400, "parameter_invalid"), id="limit-negative"
    ),
    pytest.param(
        Hostile(request(b"GET", API.encode() + b"/charges?status=%ff%fe"), 400, "parameter_invalid"), id="status-bytes"
    ),
    # -- methods ----------------------------------------------------------------------------------
    *[
        pytest.param(Hostile(request(method, API.encode() + b"/charge"), 405, "method_not_allowed"), id=f"{m}-charge")
        for m, method in [("put", b"PUT"), ("delete", b"DELETE"), ("patch", b"PATCH"), ("get", b"GET")]
    ],
    *[
        pytest.param(Hostile(request(method, API.encode() + b"/charges"), 405, "method_not_allowed"), id=f"{m}-list")
        for m, method in [("post", b"POST"), ("options", b"OPTIONS"), ("trace", b"TRACE"), ("connect", b"CONNECT")]
    ],
    pytest.param(
        Hostile(request(b"DELETE", API.encode() + b"/charge/ch_x"), 405, "method_not_allowed"), id="delete-charge-id"
    ),
    pytest.param(Hostile(request(b"PROPFIND", API.encode() + b"/charges"), None), id="unknown-method"),
    pytest.param(Hostile(request(b"get", API.encode() + b"/charges"), None), id="lowercase-method"),
]


def _charges_total(server: SandboxProcess, token: bytes) -> int:
    with server.client(token.decode()) as client:
        response = client.get(f"{API}/charges")
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def _assert_envelope(response: RawResponse, status: int, code: str | None) -> None:
    assert response.status == status, response
    assert response.headers.get("content-type") == "application/json", response
    assert response.headers.get("request-id", "").startswith("req_"), response
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert {"code", "message", "param"} <= set(error), body
    assert isinstance(error["code"], str), body
    assert error["code"], body
    assert isinstance(error["message"], str), body
    assert error["message"], body
    assert error["param"] is None or isinstance(error["param"], str), body
    if code is not None:
        assert error["code"] == code, body
    if status == 405:
        assert response.headers.get("allow"), response
    assert b"root:" not in response.body


@pytest.mark.parametrize("hostile", CORPUS)
def test_hostile_request_is_refused_stores_nothing_and_the_server_stays_healthy(
    sandbox: SandboxProcess, hostile: Hostile
) -> None:
    token = f"hostile-{uuid4().hex}".encode()

    response = exchange(sandbox.port, hostile.make(token))

    if hostile.status is None:
        # Not HTTP the server can route: uvicorn answers 4xx itself or drops the connection.
        assert response is None or 400 <= response.status < 500, response
    else:
        assert response is not None, "the server closed the connection without answering"
        _assert_envelope(response, hostile.status, hostile.code)
    assert _charges_total(sandbox, token) == 0
    assert sandbox.healthy()


def test_a_valid_chunked_body_is_accepted_once(sandbox: SandboxProcess) -> None:
    """The positive twin of the chunked cases: chunking itself is fine, and stores exactly one charge."""
    token = f"chunked-{uuid4().hex}".encode()
    make = post(chunked(VALID[:7], VALID[7:]), extra=CHUNKED, content_length=False)

    response = exchange(sandbox.port, make(token))

    assert response is not None
    assert response.status == 200, response
    assert json.loads(response.body)["amount"] == 1500
    assert _charges_total(sandbox, token) == 1

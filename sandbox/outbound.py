"""The sandbox's own outbound requests (webhook deliveries): where they may go, how they are signed,
and a lean HTTP/1.1 POST on asyncio streams.

Why not httpx, which the package has: a delivery to a dead endpoint is the common case a sandbox
must shrug off, and httpx spent about 570 us of CPU on each refused connection (its async-library
detection retries a failing import every call) against about 70 us here. A delivery needs little of
an HTTP client: one POST on a fresh connection (`Connection: close`), no redirects, no proxies, no
cookies, the status and the first BODY_KEPT bytes of the answer, one deadline for the whole
exchange.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import ssl
import time
from functools import cache
from urllib.parse import unquote, urlsplit

MAX_URL = 2048
BODY_KEPT = 4096  # bytes of an answer kept
_HEAD_LIMIT = 64 * 1024  # bytes of status line and headers read before an answer counts as bad


class BadAnswer(Exception):
    """What came back was not an HTTP/1.x answer."""


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """A `Sandbox-Signature` header: `t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def refusal(url: str, allowed: tuple[str, ...]) -> str | None:
    """Why the sandbox will not post to `url`, or None: http(s) only, and a loopback host unless
    --webhook-allow-hosts names it (`*` names every host)."""
    if len(url) > MAX_URL:
        return f"url is over {MAX_URL} characters."
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "url has a space or a control character; percent-encode it."
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # the port is checked by reading it
    except ValueError as exc:
        return f"url is not a URL ({exc})."
    if parts.scheme not in ("http", "https") or not host:
        return "url must be an http:// or https:// URL with a host, such as http://127.0.0.1:9000/webhooks."
    if "*" in allowed or host in allowed or f"[{host}]" in allowed:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return (
            f"{host[:100]!r} is not a loopback address; the sandbox posts webhooks only to 127.0.0.1, ::1 and"
            " localhost unless it is started with --webhook-allow-hosts naming the host."
        )
    return None


@cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


async def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes, float]:
    """POST `body` to `url` on a connection of its own: (status, the answer's first BODY_KEPT bytes,
    seconds taken). TimeoutError after `timeout` seconds in all; OSError (a refused connection, TLS)
    or BadAnswer otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    shown = f"[{host}]" if ":" in host else host
    default = port == (443 if tls else 80)
    lines = [
        f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {shown}{'' if default else f':{port}'}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if parts.username is not None:
        user = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append(f"Authorization: Basic {base64.b64encode(user).decode()}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    started = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=_tls() if tls else None, server_hostname=host if tls else None
            )
            writer.write(request)
            await writer.drain()
            status, answer = await _answer(reader)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                writer.transport.abort()  # nothing more to say or hear: no lingering close
    return status, answer, time.monotonic() - started


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and the first BODY_KEPT bytes of an HTTP/1.x answer."""
    head = b""
    while not head.endswith(b"\r\n\r\n") and head != b"\r\n":
        try:
            line = await reader.readline()
        except ValueError:  # a line over the reader's limit (64 KiB)
            raise BadAnswer(f"an answer head over {_HEAD_LIMIT} bytes") from None
        if not line:
            raise BadAnswer("the connection closed before a whole answer head")
        head += line
        if len(head) > _HEAD_LIMIT:
            raise BadAnswer(f"an answer head over {_HEAD_LIMIT} bytes")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise BadAnswer(f"not an HTTP answer: {status_line[:80]!r}")
    named = {name.strip().lower(): value.strip() for name, _, value in (f.partition(":") for f in fields if f)}
    if "chunked" in named.get("transfer-encoding", "").lower():
        return int(code), await _chunks(reader)
    length = named.get("content-length")
    wanted = min(int(length), BODY_KEPT) if length is not None and length.isdigit() else BODY_KEPT
    answer = b""
    while len(answer) < wanted:
        chunk = await reader.read(wanted - len(answer))
        if not chunk:
            break
        answer += chunk
    return int(code), answer


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    """A chunked body, up to BODY_KEPT bytes."""
    answer = b""
    while len(answer) < BODY_KEPT:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise BadAnswer(f"a bad chunk size: {size_line[:40]!r}") from None
        if size == 0:
            break
        chunk = await reader.readexactly(size + 2)
        answer += chunk[:size]
    return answer[:BODY_KEPT]

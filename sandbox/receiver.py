"""A webhook receiver for tests: a small HTTP server on 127.0.0.1 that checks each delivery's
`Sandbox-Signature` and keeps what arrived. Standard library only (the pytest plugin imports it
lazily, and an app's own tests can use `verify` as the reference check).

    with Receiver() as receiver:
        receiver.secret = tenant.add_webhook(receiver.url)["secret"]
        ...                                             # make a charge
        event = receiver.wait_for("charge.succeeded")

(`Tenant.webhook_receiver()` does the first two lines; the `payments_webhooks` fixture all of it.)

A delivery with a good signature is answered 200 and kept in `events`; a forged one 400, kept in
`forged`; `fail_next(n)` answers the next n deliveries 500 (the sandbox retries them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE = 300  # seconds a signature's timestamp may be off from this machine's clock


def verify(
    secret: str, header: str | None, body: bytes, tolerance: float = TOLERANCE, now: float | None = None
) -> bool:
    """Whether `header` (`t=<unix time>,v1=<hex>`) signs `body` with `secret`, at most `tolerance`
    seconds from `now` (a replayed old delivery fails)."""
    if not header:
        return False
    parts = [part.partition("=") for part in header.split(",")]
    stamps = [value for name, _, value in parts if name.strip() == "t"]
    signatures = [value.strip() for name, _, value in parts if name.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not signatures:
        return False
    stamp = stamps[0].strip()
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got: the event (parsed), its headers, and how it was answered."""

    event: dict[str, Any]
    headers: dict[str, str]
    verified: bool
    status: int

    @property
    def attempt(self) -> int:
        return int(self.headers.get("sandbox-delivery-attempt", "1"))


class Receiver:
    """See the module's docstring. Thread-safe: the server runs on threads of its own."""

    def __init__(self, secret: str | None = None, host: str = "127.0.0.1") -> None:
        self.secret = secret  # set it to the endpoint's secret once registered
        self.webhook_id: str | None = None  # the endpoint's id, once registered
        self.deliveries: list[Delivery] = []  # every POST, in the order they arrived
        self._failing: list[int] = []  # statuses for the next deliveries, instead of 200
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhooks"

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events delivered with a good signature and answered 200, in the order they arrived
        (an event delivered twice is here twice)."""
        with self._changed:
            return [d.event for d in self.deliveries if d.verified and d.status == 200]

    @property
    def forged(self) -> list[Delivery]:
        """Deliveries whose signature did not check out (answered 400)."""
        with self._changed:
            return [d for d in self.deliveries if not d.verified]

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` deliveries with `status` instead of 200."""
        with self._changed:
            self._failing.extend([status] * count)

    def wait_for(self, event_type: str, timeout: float = 5.0, *, count: int = 1, status: int = 200) -> dict[str, Any]:
        """The first event of `event_type` received and answered `status` (200: with a good
        signature; 500 after `fail_next`: a delivery the sandbox will retry; 400: forged), once
        `count` of them have been: an AssertionError naming what did arrive if they do not within
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [d.event for d in self.deliveries if d.event.get("type") == event_type and d.status == status]
                if len(found) >= count:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [f"{d.event.get('type')} ({d.status})" for d in self.deliveries]
                    raise AssertionError(
                        f"no {count} x {event_type} answered {status} within {timeout:g} s;"
                        f" received: {', '.join(seen) or 'nothing'}"
                    )
                self._changed.wait(left)

    def _receive(self, body: bytes, headers: dict[str, str]) -> int:
        verified = self.secret is not None and verify(self.secret, headers.get("sandbox-signature"), body)
        try:
            event = json.loads(body)
        except ValueError:
            event = {"unparsed": body.decode("utf-8", "replace")}
        with self._changed:
            status = 400 if not verified else self._failing.pop(0) if self._failing else 200
            self.deliveries.append(Delivery(event, headers, verified, status))
            self._changed.notify_all()
        return status

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            status = receiver._receive(body, {k.lower(): v for k, v in self.headers.items()})
            answer = b'{"received": true}' if status == 200 else b'{"received": false}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a test's output is not the place for each delivery."""

    return Handler

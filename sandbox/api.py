"""The Payments API under the contract's server path: thin async endpoints over `Payments`.

One ASGI callable serves every path under the prefix, dispatching on the contract's own routes,
so that unknown paths and wrong methods there get the same envelope, Request-Id and journal
entry as every other API call. A call goes through named steps: read the head (`Call`), `answer`
it (route, authenticate, parse, validate, dispatch), `journal` it, `respond`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from sandbox import faults
from sandbox.auth import Auth
from sandbox.errors import ApiError, ClientGone, ConfigError, InternalError, InvalidRequest, UnsupportedMedia
from sandbox.findings import Watcher, warning
from sandbox.models import Entry, Fault, Kind, Reply
from sandbox.openapi import Contract
from sandbox.payments import Payments
from sandbox.settings import Settings
from sandbox.stores import StoreUnavailable
from sandbox.wire import parse_json, read_asgi_body, render, send_json, to_json

_JOURNAL_BODY_LIMIT = 8192  # bytes of each body the journal keeps
_JOURNAL_TEXT_LIMIT = 255  # characters of the path, query and Idempotency-Key it keeps
_log = logging.getLogger("sandbox")


class Call:
    """One call as it goes through the steps: the headers it is read by, then what it got. The
    front (app.py) reads the head once for every request: its size and Host for its own checks,
    the rest for the API."""

    __slots__ = (
        "authorization", "content", "ctype", "fault", "headers", "host", "key", "length", "raw", "scenario", "size",
        "status", "tenant", "whole",
    )  # fmt: skip

    def __init__(self, scope: Scope) -> None:
        self.authorization: str | None = None
        self.ctype: str | None = None
        self.key: str | None = None
        self.length: bytes | None = None
        self.host: bytes | None = None
        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"host":
                self.host = value
            elif name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"content-type":
                self.ctype = value.decode("latin-1")
            elif name == b"content-length":
                self.length = value
            elif name == b"idempotency-key":
                self.key = value.decode("latin-1")
        self.size = size  # of the names and values of all the headers
        self.tenant: str | None = None
        self.raw: bytes | None = None  # the request body, once read
        self.status = 0
        self.content = b""
        self.headers: dict[str, str] = {}
        self.scenario: str | None = None
        self.fault: Fault | None = None
        self.whole = 0  # the length of the answer's body when a fault sends only part of it

    def replied(self, reply: Reply) -> None:
        self.status, self.content, self.headers, self.scenario = (
            reply.status,
            to_json(reply.body) if reply.raw is None else reply.raw,
            reply.headers,
            reply.scenario,
        )
        if reply.scenario:
            self.headers = {**reply.headers, "Sandbox-Scenario": reply.scenario}
        if reply.fault is not None:  # from here on, status and content are what the client is sent
            self.fault, self.whole = reply.fault, len(self.content)
            self.status, self.content = faults.sent(reply.fault, self.status, self.content)

    def failed(self, error: BaseException) -> None:
        known, self.content = render(error)
        self.status, self.headers = known.status, known.headers


class PaymentsAPI:
    """A plain ASGI app: the request path of every API call is short and measured (bench/)."""

    def __init__(
        self, contract: Contract, payments: Payments, auth: Auth, settings: Settings, watcher: Watcher
    ) -> None:
        self.contract = contract
        self.watcher = watcher
        self.auth = auth
        self.payments = payments
        self.store = payments.store
        self.settings = settings
        self.handlers: dict[str, Handler] = {
            "postCreateCharge": partial(self._write, Kind.CHARGE),
            "getGetCharge": self.get_charge,
            "getListCharges": self.list_charges,
            "postCreateRefund": partial(self._write, Kind.REFUND),
        }
        self.stopping = asyncio.Event()  # set on shutdown: scripted delays end at once
        self.lost_noted = -60.0  # when a journal entry lost to an unavailable store was last logged
        missing = set(contract.operations) - set(self.handlers)
        if missing:
            raise ConfigError(
                f"{contract.source}: no handler for operations {sorted(missing)}; use the bundled contract."
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(Call(scope), scope, receive, send)

    async def serve(self, call: Call, scope: Scope, receive: Receive, send: Send) -> None:
        """The call whose head `call` has read."""
        started, clock = time.time(), time.perf_counter()
        bug: Exception | None = None
        try:
            call.replied(await self.answer(call, scope, receive))
        except ApiError as error:
            call.failed(error)
        except Exception as error:  # never expected: every input has a 4xx answer; the client still gets JSON
            call.failed(error)
            bug = error
        connection: faults.Connection | None = scope.get(faults.CONNECTION)
        if connection is not None and call.status != 499 and connection.gone():
            # It left while its request was processed (a client timeout during a scripted delay):
            # the work stands, as it would at a real processor, and the journal says nobody read the answer.
            call.failed(ClientGone("its answer was sent"))
        await self.journal(call, scope, started, time.perf_counter() - clock)
        if call.fault is not None:
            await faults.deliver(
                call.fault, scope, send, call.status, call.content, call.whole, scope.get("request_id"), call.headers,
                self.stopping,
            )  # fmt: skip
        elif call.status != 499:  # a client that left is journaled, not answered
            await self.respond(call, scope, send)
        if bug is not None:
            raise bug  # after the answer: the server logs it; an in-process test client fails the test

    async def answer(self, call: Call, scope: Scope, receive: Receive) -> Reply:
        """Route, authenticate, parse and check the parameters and body, and run the endpoint."""
        op, path_params = self.contract.match(scope["method"], scope["path"][len(self.contract.prefix) :])
        call.tenant = tenant = self.auth.tenant_of(call.authorization)
        query: bytes = scope["query_string"]
        params = op.parse_params(path_params, dict(parse_qsl(query.decode("latin-1"), True)) if query else {})
        body = None
        if op.body is not None:
            call.raw = await read_asgi_body(scope, receive, call.length, self.settings.max_body_bytes)
            body = _parse_body(call.raw, call.ctype)
            op.check_body(body)
        return await self.handlers[op.id](tenant, params, body, call.key)

    async def journal(self, call: Call, scope: Scope, started: float, duration: float) -> None:
        """Record the call before its answer goes out: a client that reads the journal as soon as it
        has its answer (from this process or another one sharing the store) finds the call there."""
        raw, key = call.raw, call.key
        entry = Entry(
            scope.get("request_id") or "",
            call.tenant,
            scope["method"],
            scope["path"][:_JOURNAL_TEXT_LIMIT],
            scope["query_string"][:_JOURNAL_TEXT_LIMIT].decode("latin-1"),
            call.status,
            started,
            duration,
            key[:_JOURNAL_TEXT_LIMIT] if key else None,
            call.scenario,
            raw[:_JOURNAL_BODY_LIMIT] if raw else None,
            call.content[:_JOURNAL_BODY_LIMIT],
            call.fault.kind if call.fault else None,
        )
        if call.tenant is not None:
            found = self.watcher.observe(entry, call.headers)
            if found:
                entry.findings = found
                call.headers = {**call.headers, "Sandbox-Warning": warning(found)}
        try:
            await self.store.record(entry)
        except StoreUnavailable:  # the client still gets its answer; the entry is lost while the store is away
            # At most a line a minute: the store being away would otherwise log every request.
            if time.monotonic() - self.lost_noted >= 60:
                self.lost_noted = time.monotonic()
                _log.warning("the store is unavailable: journal entries are being lost")

    @staticmethod
    async def respond(call: Call, scope: Scope, send: Send) -> None:
        try:
            await send_json(send, call.status, call.content, scope.get("request_id"), call.headers)
        except Exception:  # never expected (scenario headers are checked when loaded): answer 500, then raise
            await send_json(send, 500, render(InternalError())[1], scope.get("request_id"))
            raise

    # -- endpoints --------------------------------------------------------------------------
    async def get_charge(self, tenant: str, params: dict[str, Any], body: Any, key: str | None) -> Reply:
        return Reply(200, await self.payments.get_charge(tenant, params["id"]))

    async def list_charges(self, tenant: str, params: dict[str, Any], body: Any, key: str | None) -> Reply:
        page = await self.payments.list_charges(tenant, params["limit"], params["offset"], params.get("status"))
        return Reply(200, page)

    async def _write(self, kind: Kind, tenant: str, params: dict[str, Any], body: Any, key: str | None) -> Reply:
        """POST a charge or a refund (the two handlers, each with its kind)."""
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
    if ctype == "application/json":  # as nearly every client sends it: nothing to pick apart
        return parse_json(raw)
    media, _, options = (ctype or "").partition(";")
    if media.strip().lower() != "application/json" or ("charset" in options.lower() and "utf-8" not in options.lower()):
        raise UnsupportedMedia(
            "unsupported_media_type",
            f"Send the body as JSON with `Content-Type: application/json` (got {(ctype or '')[:60]!r}).",
        )
    return parse_json(raw)

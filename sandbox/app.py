"""create_app(settings) -> the ASGI app: the one module that knows every other one."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Sized
from types import FrameType
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.api import Call, PaymentsAPI
from sandbox.auth import Auth
from sandbox.chaos import Chaos
from sandbox.control import Control
from sandbox.dashboard import Dashboard
from sandbox.errors import ApiError, HeadersTooLarge, MethodNotAllowed, Misdirected, NotFound, Overloaded, envelope
from sandbox.findings import Watcher
from sandbox.guard import HostCheck
from sandbox.models import new_id
from sandbox.openapi import load_contract
from sandbox.payments import Payments
from sandbox.scenarios import load_rules
from sandbox.settings import BUNDLED_SPEC, Settings
from sandbox.stores import open_store
from sandbox.tenants import Tenants
from sandbox.webhooks import Webhooks
from sandbox.wire import error_response, json_response, render, send_json
from sandbox.worker import Worker

MAX_HEADER_BYTES = 16 * 1024


class Front:
    """The outermost ASGI app. Gives every HTTP response a `Request-Id` header (and the endpoints
    the same id); refuses, before anything else runs, oversized headers (431), a Host the sandbox
    does not answer (421, see guard.py) and connections over the limit (503); and sends API calls
    straight to the API, so that the hot path skips the Starlette router; everything else goes to
    `rest`."""

    def __init__(self, api: PaymentsAPI, rest: ASGIApp, settings: Settings) -> None:
        self.api = api
        self.store = api.store
        self.webhooks = api.payments.webhooks
        self.prefix = api.contract.prefix
        self.rest = rest
        self.settings = settings
        self.hosts = HostCheck(settings.host, settings.allowed_hosts)
        self.limit = settings.limit_concurrency
        self.connections: Sized = ()  # the server's open connections: server.py hands uvicorn's set in
        self.sweeper: asyncio.Task[None] | None = None  # server.py's watch over those connections

    def refusal(self, head: Call) -> ApiError | None:
        host = head.host
        if head.size > MAX_HEADER_BYTES:
            message = f"The request headers are over {MAX_HEADER_BYTES} bytes in all; send fewer or shorter ones."
            return HeadersTooLarge("headers_too_large", message)
        if not self.hosts.allows(host):
            name = HostCheck.host_name(host or b"")[:100]
            return Misdirected(
                "misdirected_request",
                f"{self.hosts.describe()}, not {name!r} (a guard against DNS rebinding); "
                "start it with --allowed-hosts to add a name.",
            )
        if len(self.connections) > self.limit:
            return Overloaded(self.limit)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await (self._lifespan(receive, send) if scope["type"] == "lifespan" else self.rest(scope, receive, send))
            return
        request_id = scope["request_id"] = new_id("req_")
        head = Call(scope)
        refused = self.refusal(head)
        if refused is not None:
            await send_json(send, refused.status, render(refused)[1], request_id, refused.headers)
            return
        path: str = scope["path"]
        if path.startswith(self.prefix) and path[len(self.prefix) : len(self.prefix) + 1] in ("", "/"):
            await self.api.serve(head, scope, receive, send)
            return
        header = (b"request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.rest(scope, receive, send_with_id)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start: make SIGTERM/SIGINT end scripted delays at once, so that a request waiting out a
        `delay_ms` (up to 120 s) is answered before the server stops instead of being cut off.
        Start the webhook deliverer. Stop: stop it, and let go of the store."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._end_delays_on_signals(asyncio.get_running_loop())
                if self.webhooks is not None:
                    self.webhooks.deliverer.start(persistent=True)  # takes jobs any process queued
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.webhooks is not None:
                    await self.webhooks.close()
                await self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _end_delays_on_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        # uvicorn has installed its own handlers by now (in every worker process); ours runs first.
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.api.stopping.set)
                if callable(previous):
                    previous(signum, frame)

            signal.signal(sig, handler)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(MethodNotAllowed(request.method, [m.strip() for m in allowed.split(",") if m.strip()]))
    if exc.status_code == 404:
        return error_response(NotFound("not_found", f"No route {request.method} {request.scope['path'][:200]}."))
    return json_response(exc.status_code, envelope("http_error", str(exc.detail)), dict(exc.headers or {}))


async def _error(request: Request, exc: Exception) -> Response:
    # An ApiError, or (never expected: every input has a 4xx answer) a bug, which Starlette raises
    # again once this 500 envelope is sent.
    return error_response(exc)


def create_app(settings: Settings) -> Front:
    contract = load_contract(settings.spec, check_document=settings.spec.resolve() != BUNDLED_SPEC.resolve())
    rules = load_rules(settings.scenario_files())
    store = open_store(settings)
    webhooks = Webhooks(store, settings)
    payments = Payments(store, rules, settings.idempotency_keys, Chaos(settings.chaos_seed), webhooks)
    webhooks.settle = payments.tenant  # reading a tenant settles what is due
    watcher = Watcher(settings.max_tenants)
    tenants = Tenants(payments, store, Worker(), watcher)
    auth = Auth(settings)
    api = PaymentsAPI(contract, payments, auth, settings, watcher)
    control = Control(contract, tenants, auth, settings)
    dashboard = Dashboard(tenants, auth, settings, contract.prefix)
    handlers: dict[Any, Any] = {
        HTTPException: _http_error,
        ApiError: _error,
        Exception: _error,
    }
    rest = Starlette(
        routes=[
            Route("/__sandbox", lambda request: RedirectResponse("/__sandbox/", 307)),
            Mount("/__sandbox", routes=[*control.routes(), *dashboard.routes()]),
        ],
        exception_handlers=handlers,
    )
    # A missing trailing slash is a 404 in the envelope, as a real API answers, not a redirect.
    rest.router.redirect_slashes = False
    return Front(api, rest, settings)

"""create_app(settings) -> the ASGI app: the one module that knows every other one."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.api import ClientGone, PaymentsAPI, error_response, json_response, send_json, to_json
from sandbox.auth import Auth
from sandbox.control import Control
from sandbox.dashboard import Dashboard
from sandbox.errors import ApiError, HeadersTooLarge, InternalError, MethodNotAllowed, NotFound, envelope
from sandbox.models import new_id
from sandbox.openapi import load_contract
from sandbox.payments import Payments
from sandbox.scenarios import load_rules
from sandbox.settings import BUNDLED_SPEC, Settings
from sandbox.store import Journal, Store

MAX_HEADER_BYTES = 16 * 1024


class Front:
    """The outermost ASGI app. Gives every HTTP response a `Request-Id` header (and the endpoints
    the same id), refuses oversized headers with 431, and sends API calls straight to the API, so
    that the hot path skips the Starlette router; everything else goes to `rest`."""

    def __init__(self, api: PaymentsAPI, rest: ASGIApp) -> None:
        self.api = api
        self.prefix = api.contract.prefix
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.rest(scope, receive, send)
            return
        request_id = scope["request_id"] = new_id("req_")
        if sum([len(name) + len(value) for name, value in scope["headers"]]) > MAX_HEADER_BYTES:
            message = f"The request headers are over {MAX_HEADER_BYTES} bytes in all; send fewer or shorter ones."
            refused = HeadersTooLarge("headers_too_large", message)
            await send_json(send, refused.status, to_json(refused.body()), request_id)
            return
        path: str = scope["path"]
        if path.startswith(self.prefix) and path[len(self.prefix) : len(self.prefix) + 1] in ("", "/"):
            await self.api(scope, receive, send)
            return
        header = (b"request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.rest(scope, receive, send_with_id)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(MethodNotAllowed(request.method, [m.strip() for m in allowed.split(",") if m.strip()]))
    if exc.status_code == 404:
        return error_response(NotFound("not_found", f"No route {request.method} {request.url.path[:200]}."))
    return json_response(exc.status_code, envelope("http_error", str(exc.detail)), dict(exc.headers or {}))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # the client left mid-body; nobody reads this


async def _crash(request: Request, exc: Exception) -> Response:
    # Never expected: every input has a 4xx answer. If it happens the client still gets JSON.
    return error_response(InternalError())


def create_app(settings: Settings) -> Front:
    contract = load_contract(settings.spec, check_document=settings.spec.resolve() != BUNDLED_SPEC.resolve())
    rules = load_rules(settings.scenario_files())
    store = Store()
    journal = Journal(settings.journal_size)
    payments = Payments(store, rules, settings.idempotency_keys)
    auth = Auth(settings)
    api = PaymentsAPI(contract, payments, journal, auth, settings)
    control = Control(contract, payments, journal, auth, settings)
    dashboard = Dashboard(payments, journal, auth, settings)
    handlers: dict[Any, Any] = {
        HTTPException: _http_error,
        ApiError: _api_error,
        ClientGone: _gone,
        Exception: _crash,
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
    return Front(api, rest)

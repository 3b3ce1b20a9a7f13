"""The control API under /__sandbox: health, scenario catalog, journal, reset, clock.

Calls act on the tenant named by `Authorization: Bearer` (the same tenant the API sees), or on
every tenant when no token is given. With a control token configured, every call except health
must carry `Sandbox-Control-Token`.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sandbox import __version__
from sandbox.api import json_response, parse_json
from sandbox.auth import tenant_of
from sandbox.errors import InvalidRequest, Unauthorized
from sandbox.models import rfc3339
from sandbox.openapi import Contract
from sandbox.payments import Payments
from sandbox.settings import Settings
from sandbox.store import Journal

MAX_CLOCK_ADVANCE = 10 * 365 * 24 * 3600


class Control:
    def __init__(self, contract: Contract, payments: Payments, journal: Journal, settings: Settings) -> None:
        self.contract = contract
        self.payments = payments
        self.journal = journal
        self.settings = settings

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/scenarios", self.scenarios, methods=["GET"]),
            Route("/requests", self.requests, methods=["GET"]),
            Route("/reset", self.reset, methods=["POST"]),
            Route("/clock/advance", self.advance_clock, methods=["POST"]),
        ]

    # -- helpers ----------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        expected = self.settings.control_token
        if expected is None:
            return
        given = request.headers.get("sandbox-control-token", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("This sandbox's control API needs the header `Sandbox-Control-Token`.")

    def _tenant(self, request: Request) -> str | None:
        """The tenant named by the bearer token, or None for 'every tenant'."""
        if not request.headers.get("authorization"):
            return None
        return tenant_of(request.headers.get("authorization"), self.settings.jwt_secret)

    async def _json(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        body = parse_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise InvalidRequest("invalid_body", "The request body must be a JSON object.")
        return body

    # -- endpoints --------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return json_response(
            200,
            {
                "status": "ok",
                "version": __version__,
                "spec": {"path": str(self.contract.source), "sha256": self.contract.fingerprint},
                "scenarios": [{"path": p, "sha256": h} for p, h in self.payments.rules.fingerprints.items()],
            },
        )

    async def scenarios(self, request: Request) -> Response:
        self._authorize(request)
        tenant = self._tenant(request)
        rules = self.payments.rules
        if tenant is not None and tenant in self.payments.store.tenants:
            rules = self.payments.rules_for(self.payments.store.tenants[tenant])
        return json_response(200, {"rules": [rule.catalog() for rule in rules.rules]})

    async def requests(self, request: Request) -> Response:
        self._authorize(request)
        query = request.query_params
        status = query.get("status")
        if status is not None and not status.isdigit():
            raise InvalidRequest("parameter_invalid", "status must be an HTTP status code such as 402.", "status")
        entries = self.journal.select(
            self._tenant(request),
            query.get("method", "").upper() or None,
            query.get("path"),
            int(status) if status else None,
        )
        return json_response(200, {"requests": entries})

    async def reset(self, request: Request) -> Response:
        self._authorize(request)
        tenant = self._tenant(request)
        self.payments.store.reset(tenant)
        self.journal.forget(tenant)
        return json_response(200, {"reset": "tenant" if tenant else "all"})

    async def advance_clock(self, request: Request) -> Response:
        self._authorize(request)
        tenant = self._tenant(request)
        if tenant is None:
            raise Unauthorized("Advancing the clock needs the tenant's `Authorization: Bearer <token>`.")
        body = await self._json(request)
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_CLOCK_ADVANCE:
            raise InvalidRequest(
                "parameter_invalid", f"seconds must be a number from 0 to {MAX_CLOCK_ADVANCE}.", "seconds"
            )
        state = self.payments.store.tenant(tenant)
        state.clock_offset += seconds
        self.payments.tenant(tenant)  # settle what is now due
        return json_response(200, {"now": rfc3339(state.now()), "offset_seconds": state.clock_offset})

"""The control API under /__sandbox: health, tenants, scenarios, journal, findings, coverage, reset,
seed, clock, events and webhooks.

Calls act on the tenant named by `Authorization: Bearer` (the same tenant the API sees), or on
every tenant when no token is given. With a control token configured, every call except health
must carry `Sandbox-Control-Token`. Every call that changes state refuses what a browser marks as
cross-site and a body a form could send (see guard.py).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import __version__
from sandbox.auth import Auth
from sandbox.errors import InvalidRequest, NotFound, Unauthorized
from sandbox.findings import CODES, coverage_of, findings_of
from sandbox.guard import JSON_TYPES, YAML_TYPES, refuse_cross_site, require_body_type
from sandbox.models import EVENT_KINDS, EVENT_TYPES, event_matches, rfc3339
from sandbox.numbers import whole
from sandbox.openapi import Contract
from sandbox.payments import now_of
from sandbox.settings import PACKAGE_DIR, Settings
from sandbox.stores.base import EVENTS_KEPT
from sandbox.tenants import MAX_CLOCK_ADVANCE, MAX_SEED, Tenants
from sandbox.webhooks import Webhooks
from sandbox.wire import json_response, parse_json, read_body

Endpoint = Callable[[Request], Awaitable[Response]]
_CONTROL_SPEC = PACKAGE_DIR / "control-openapi.json"
__all__ = ["MAX_CLOCK_ADVANCE", "MAX_SEED", "Control", "Endpoint"]


class Control:
    def __init__(self, contract: Contract, tenants: Tenants, auth: Auth, settings: Settings) -> None:
        self.contract = contract
        self.tenants = tenants
        self.auth = auth
        self.settings = settings

    def routes(self) -> list[Route]:
        guarded = [
            ("/scenarios", self.scenarios, "GET"),
            ("/scenarios", self.add_scenarios, "POST"),
            ("/chaos", self.add_chaos, "POST"),
            ("/requests", self.requests, "GET"),
            ("/findings", self.findings, "GET"),
            ("/coverage", self.coverage, "GET"),
            ("/reset", self.reset, "POST"),
            ("/clock/advance", self.advance_clock, "POST"),
            ("/seed", self.seed, "POST"),
            ("/tenants", self.list_tenants, "GET"),
            ("/events", self.events, "GET"),
            ("/events/{event_id}/redeliver", self.redeliver, "POST"),
            ("/webhooks", self.add_webhook, "POST"),
            ("/webhooks", self.webhooks, "GET"),
            ("/webhooks/{hook_id}", self.delete_webhook, "DELETE"),
            ("/webhooks/{hook_id}/deliveries", self.deliveries, "GET"),
            ("/openapi.json", self.openapi, "GET"),
        ]
        return [Route("/health", self.health, methods=["GET"])] + [
            Route(path, self._guard(endpoint), methods=[method]) for path, endpoint, method in guarded
        ]

    def _guard(self, endpoint: Endpoint) -> Endpoint:
        """With --control-token set, the endpoint answers only calls carrying that token."""

        async def guarded(request: Request) -> Response:
            self._authorize(request)
            if request.method != "GET":
                refuse_cross_site(request.headers)
            return await endpoint(request)

        return guarded

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
        return self.auth.tenant_of(request.headers.get("authorization"))

    def _required_tenant(self, request: Request, action: str) -> str:
        tenant = self._tenant(request)
        if tenant is None:
            raise Unauthorized(f"{action} needs the tenant's `Authorization: Bearer <token>`.")
        return tenant

    async def _body(self, request: Request, accepted: tuple[str, ...] = JSON_TYPES) -> bytes:
        raw = await read_body(request, self.settings)
        require_body_type(request.headers, raw, accepted)
        return raw

    async def _json(self, request: Request) -> dict[str, Any]:
        raw = await self._body(request)
        body = parse_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise InvalidRequest("invalid_body", "The request body must be a JSON object.")
        return body

    # -- endpoints --------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        store = self.tenants.store
        await store.check()  # StoreUnavailable: 503 in the envelope, which is what a health check should see
        count = (await store.summaries(0, 0))[1]
        dropped, _ = await store.drops()
        return json_response(
            200,
            {
                "status": "ok",
                "version": __version__,
                "api": self.contract.prefix,
                "spec": {"path": str(self.contract.source), "sha256": self.contract.fingerprint},
                "scenarios": [{"path": p, "sha256": h} for p, h in self.tenants.payments.rules.fingerprints.items()],
                "store": {"kind": store.kind, "reachable": True},
                "tenants": {"count": count, "max": store.max_tenants, "dropped": dropped},
                "chaos": {"profile": self.settings.chaos, "seed": self.settings.chaos_seed},
            },
        )

    async def scenarios(self, request: Request) -> Response:
        rules = await self.tenants.rules(self._tenant(request))
        return json_response(200, {"rules": [rule.catalog() for rule in rules.rules]})

    async def requests(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status")
        code = whole(status)
        if status is not None and (code is None or not 100 <= code <= 599):
            raise InvalidRequest("parameter_invalid", "status must be an HTTP status code such as 402.", "status")
        method, path = query.get("method", "").upper() or None, query.get("path")
        entries = [
            e.view()
            for e in reversed(await self.tenants.store.entries(self._tenant(request)))
            if (method is None or e.method == method)
            and (path is None or e.path == path)
            and (code is None or e.status == code)
        ]
        return json_response(200, {"requests": entries})

    async def findings(self, request: Request) -> Response:
        code = request.query_params.get("code")
        if code is not None and code not in CODES:
            raise InvalidRequest("parameter_invalid", f"code must be one of {', '.join(CODES)}.", "code")
        return json_response(200, {"findings": await findings_of(self.tenants, self._tenant(request), code)})

    async def coverage(self, request: Request) -> Response:
        return json_response(200, await coverage_of(self.tenants, self._tenant(request)))

    async def reset(self, request: Request) -> Response:
        tenant = self._tenant(request)
        await self._body(request)  # none is needed, but a form's must not get through
        await self.tenants.reset(tenant)
        return json_response(200, {"reset": "tenant" if tenant else "all"})

    async def advance_clock(self, request: Request) -> Response:
        tenant = self._required_tenant(request, "Advancing the clock")
        body = await self._json(request)
        meta = await self.tenants.advance_clock(tenant, body.get("seconds"))
        return json_response(200, {"now": rfc3339(now_of(meta)), "offset_seconds": meta.clock_offset})

    async def seed(self, request: Request) -> Response:
        tenant = self._required_tenant(request, "Seeding")
        body = await self._json(request)
        count, seed = body.get("count", 20), body.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidRequest("parameter_invalid", "seed must be a whole number.", "seed")
        made = await self.tenants.seed(tenant, count, seed)
        return json_response(200, {"created": len(made), "ids": [c.id for c in made]})

    async def add_scenarios(self, request: Request) -> Response:
        """Rules for this tenant only, ahead of the loaded files, until the tenant is reset."""
        tenant = self._required_tenant(request, "Loading scenarios")
        raw = await self._body(request, JSON_TYPES + YAML_TYPES)
        return json_response(200, {"rules": await self.tenants.add_rules(tenant, raw)})

    async def add_chaos(self, request: Request) -> Response:
        """A built-in chaos profile for this tenant only, after every other rule, until it is reset."""
        tenant = self._required_tenant(request, "Loading a chaos profile")
        body = await self._json(request)
        return json_response(200, {"rules": await self.tenants.add_chaos(tenant, body.get("profile"))})

    async def events(self, request: Request) -> Response:
        """The tenant's events, oldest first: of a `type` (or `kind.*`), after the event `after`."""
        tenant = self._required_tenant(request, "Listing events")
        query = request.query_params
        kind, after, limit = query.get("type"), query.get("after"), whole(query.get("limit", "20"))
        if kind is not None and kind not in EVENT_TYPES and kind not in EVENT_KINDS:
            raise InvalidRequest(
                "parameter_invalid", f"type must be one of {', '.join(EVENT_TYPES)}, or charge.* or refund.*.", "type"
            )
        if limit is None or not 1 <= limit <= 100:
            raise InvalidRequest("parameter_invalid", "limit must be a whole number from 1 to 100.", "limit")
        events = await self.tenants.store.events(tenant)
        if after is not None:
            at = next((n for n, event in enumerate(events) if event.id == after), None)
            if at is None:
                raise InvalidRequest(
                    "parameter_invalid",
                    f"No event {after[:64]!r} among this tenant's; the oldest go past {EVENTS_KEPT} (or at a reset).",
                    "after",
                )
            events = events[at + 1 :]
        if kind is not None:
            events = [e for e in events if event_matches(kind, e.type)]
        return json_response(200, {"data": [event.wire() for event in events[:limit]], "has_more": len(events) > limit})

    # -- webhooks (webhooks.py) -------------------------------------------------------------
    @property
    def _webhooks(self) -> Webhooks:
        webhooks = self.tenants.payments.webhooks
        assert webhooks is not None  # create_app gives Payments its Webhooks
        return webhooks

    async def add_webhook(self, request: Request) -> Response:
        """Register an endpoint for the tenant's events: its id and the secret that signs them."""
        tenant = self._required_tenant(request, "Registering a webhook endpoint")
        hook = await self._webhooks.register(tenant, await self._json(request))
        return json_response(200, hook.wire())

    async def webhooks(self, request: Request) -> Response:
        tenant = self._required_tenant(request, "Listing webhook endpoints")
        return json_response(200, {"data": [hook.wire() for hook in await self._webhooks.hooks(tenant)]})

    async def delete_webhook(self, request: Request) -> Response:
        tenant = self._required_tenant(request, "Deleting a webhook endpoint")
        hook_id = request.path_params["hook_id"]
        await self._webhooks.remove(tenant, hook_id)
        return json_response(200, {"id": hook_id, "deleted": True})

    async def deliveries(self, request: Request) -> Response:
        """Every attempt to deliver to the endpoint (the newest ATTEMPTS_KEPT), newest first."""
        tenant = self._required_tenant(request, "Listing webhook deliveries")
        return json_response(200, {"data": await self._webhooks.attempts(tenant, request.path_params["hook_id"])})

    async def redeliver(self, request: Request) -> Response:
        """Send an event again, now: to the endpoint `webhook` names, or to every one that wants it."""
        tenant = self._required_tenant(request, "Redelivering an event")
        body = await self._json(request)
        hook_id = body.get("webhook")
        if hook_id is not None and not isinstance(hook_id, str):
            raise InvalidRequest("parameter_invalid", "webhook must be an endpoint id (we_...).", "webhook")
        event_id = request.path_params["event_id"]
        event = next((e for e in await self.tenants.store.events(tenant) if e.id == event_id), None)
        if event is None:
            raise NotFound(
                "resource_missing",
                f"No event {event_id[:64]!r} among this tenant's (the newest {EVENTS_KEPT} are kept).",
                "event_id",
            )
        return json_response(200, {"deliveries": await self._webhooks.redeliver(tenant, event, hook_id)})

    async def list_tenants(self, request: Request) -> Response:
        listed, _ = await self.tenants.summaries(0, self.tenants.store.max_tenants)
        rows = [
            {"id": t.key, "charges": t.charges, "refunds": t.refunds, **t.counts}
            for t in listed
            if t.charges or t.refunds
        ]
        return json_response(200, {"tenants": rows})

    async def openapi(self, request: Request) -> Response:
        return Response(_CONTROL_SPEC.read_bytes(), media_type="application/json")

"""The dashboard: HTML pages under /__sandbox/ showing what client apps did to the sandbox.

Owns the browser's view of the sandbox: the pages (tenants, a tenant's charges, a charge, the
live request journal, one request, the scenario catalog with the chaos profile in use, the findings
about the client and its coverage, a tenant's events) rendered with Jinja2 from `templates/`, the stylesheet
and script in `static/`, the login cookie that stands for `--control-token`, and the actions
(reset, advance the clock, seed) a developer takes from a page. It reads the store through the same
`Tenants` service as the control API and changes state exactly as that API does.

Every page costs about its page size however many tenants and requests the sandbox holds (the
reading is in dashboard_views.py). A page's live region carries a version; the script polls with
`?fragment=live&version=V` and, while V is current, gets a bodiless 204 instead of the region, so an
open tab costs the server next to nothing until something it shows changes. The findings,
coverage and request pages are the exception: they are judged from the whole journal (as the control
API's are), so they are read when opened and not polled; so are a tenant's events (up to EVENTS_KEPT
of them, read whole as GET /__sandbox/events reads them) and a charge's, outside its live region.
"""

from __future__ import annotations

import hmac
import random
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sandbox import __version__
from sandbox.auth import Auth
from sandbox.chaos import PROFILES
from sandbox.control import Endpoint
from sandbox.dashboard_format import Event, money, pretty, utc
from sandbox.dashboard_views import (
    Filter,
    by_id,
    charge_events,
    charge_facts,
    charge_requests,
    counted,
    event_counts,
    event_kind,
    event_rows,
    finding_rows,
    newest,
    of_kind,
    page_number,
    rows,
    tenant_row,
    version,
)
from sandbox.errors import ApiError, InvalidRequest, NotFound, Unauthorized
from sandbox.findings import ADVICE, CODES, coverage_of, findings_of
from sandbox.guard import refuse_cross_site
from sandbox.models import STATUSES, Summary
from sandbox.numbers import whole
from sandbox.settings import Settings
from sandbox.stores.base import EVENTS_KEPT
from sandbox.tenants import MAX_CLOCK_ADVANCE, MAX_SEED, Tenants
from sandbox.webhooks import Webhooks
from sandbox.wire import json_response, read_body

if TYPE_CHECKING:
    import jinja2

__all__ = ["Dashboard", "money"]

HERE = Path(__file__).resolve().parent
COOKIE = "sandbox_control_token"
PAGE_SIZE = 25  # charges per page
TENANTS_PAGE_SIZE = 50
LIVE_ROWS = 200  # newest journal entries a requests page holds
FINDINGS_ROWS = 200  # newest findings the findings page shows
EVENTS_PAGE_SIZE = 50  # events per page
SUGGESTED = 50  # tenants a filter offers (most recently used first): never a list of all 10,000
LIVE = "live"  # the block of a page that its script polls
VERSION_HEADER = "Sandbox-Version"
_SECURITY_HEADERS = {
    # No inline script or style anywhere, and no framing: a page of buttons that reset state must
    # not be clickjackable.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Dashboard:
    def __init__(self, tenants: Tenants, auth: Auth, settings: Settings, api_prefix: str) -> None:
        self.tenants = tenants
        self.api_prefix = api_prefix  # the contract's server path, e.g. /v1/payments
        self.store = tenants.store
        self.auth = auth
        self.settings = settings

    @property
    def _webhooks(self) -> Webhooks | None:
        return self.tenants.payments.webhooks

    async def _deliveries(self, key: str) -> dict[str, list[dict[str, Any]]]:
        """The tenant's webhook attempts by event id (none without endpoints)."""
        return await self._webhooks.attempts_by_event(key) if self._webhooks is not None else {}

    def routes(self) -> list[BaseRoute]:
        tenant = "/ui/tenants/{tenant}"
        table: list[tuple[str, Endpoint, str]] = [
            ("/", self.tenants_page, "GET"),
            ("/ui/", self.tenants_page, "GET"),
            ("/ui/login", self.login, "GET POST"),
            ("/ui/logout", self.logout, "POST"),
            ("/ui/find", self.find, "POST"),
            ("/ui/reset", self.reset, "POST"),
            ("/ui/requests", self.requests_page, "GET"),
            ("/ui/requests.json", self.requests_feed, "GET"),
            ("/ui/scenarios", self.scenarios_page, "GET"),
            ("/ui/findings", self.findings_page, "GET"),
            ("/ui/coverage", self.coverage_page, "GET"),
            (tenant, self.charges_page, "GET"),
            (tenant + "/charges/{charge}", self.charge_page, "GET"),
            (tenant + "/events", self.events_page, "GET"),
            (tenant + "/requests/{request}", self.request_page, "GET"),
            (tenant + "/reset", self.reset, "POST"),
            (tenant + "/clock", self.advance_clock, "POST"),
            (tenant + "/seed", self.seed, "POST"),
        ]
        routes: list[BaseRoute] = [
            Route(path, self._wrap(view), methods=methods.split()) for path, view, methods in table
        ]
        # Static files hold no data, and the login page needs them: no sign-in required.
        return [*routes, Mount("/ui/static", app=StaticFiles(directory=HERE / "static"))]

    # -- plumbing ---------------------------------------------------------------------------
    @cached_property
    def _env(self) -> jinja2.Environment:
        import jinja2  # ~70 ms to import: paid by the first page view, not by every server start

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,  # package files: no stat() of every template on every render
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(money=money, utc=utc, pretty=pretty)
        env.globals.update(
            version=__version__,
            api_prefix=self.api_prefix,
            statuses=STATUSES,
            login=self.settings.control_token is not None,
            chaos=self.settings.chaos,
            chaos_seed=self.settings.chaos_seed,
        )
        return env

    def _html(self, request: Request, name: str, context: dict[str, Any], block: str | None = None) -> str:
        """A template, or one of its blocks: `?fragment=live` is the part of a page the script polls."""
        template = self._env.get_template(name)
        context = {"base": request.scope.get("root_path", ""), "query": request.query_params, "live": "", **context}
        block = block or (LIVE if request.query_params.get("fragment") == LIVE else None)
        if block not in template.blocks:
            return template.render(context)
        return "".join(template.blocks[block](template.new_context(context)))

    def _render(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200, live: str | None = None
    ) -> Response:
        """A page, or its live region; `live` is the region's version (see `_unchanged`)."""
        response = HTMLResponse(self._html(request, name, context | {"live": live or ""}), status)
        if live is not None:
            response.headers[VERSION_HEADER] = live
        return response

    @staticmethod
    def _unchanged(request: Request, live: str) -> Response | None:
        """A bodiless 204 when the script polls for the live region and already has this version of it:
        what most polls get, at the cost of reading one page of rows and no rendering."""
        query = request.query_params
        return Response(status_code=204) if query.get("fragment") == LIVE and query.get("version") == live else None

    def _wrap(self, endpoint: Endpoint) -> Endpoint:
        """Sign-in and same-origin checks; errors as a page for a browser, as the envelope otherwise."""
        guarded = endpoint.__name__ not in ("login", "logout")

        async def wrapped(request: Request) -> Response:
            browser = "text/html" in request.headers.get("accept", "")
            try:
                if request.method == "POST":
                    refuse_cross_site(request.headers)
                if guarded and not self._signed_in(request):
                    if not browser:
                        raise Unauthorized("The dashboard needs the control token: sign in, or send it in a header.")
                    back = request.scope["path"] if request.method == "GET" else ""
                    return _redirect(request, "/ui/login?" + urlencode({"next": back}))
                _check_notice(request.query_params)
                response = await endpoint(request)
            except ApiError as error:
                if not browser:
                    raise  # the app's handler answers with the error envelope
                response = self._render(request, "error.html", {"error": error}, error.status)
            response.headers.update(_SECURITY_HEADERS)
            return response

        return wrapped

    def _signed_in(self, request: Request) -> bool:
        expected = self.settings.control_token
        if expected is None:
            return True
        given = request.cookies.get(COOKIE) or request.headers.get("sandbox-control-token", "")
        return hmac.compare_digest(given.encode(), expected.encode())

    async def _form(self, request: Request) -> dict[str, str]:
        raw = await read_body(request, self.settings)
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))

    async def _tenant(self, key: str) -> Summary:
        """A tenant with data or requests (pending charges that are due settled first), or 404."""
        found = await self.tenants.summary(key)
        if found is not None:
            return found
        if (await self.store.journal_stats(key))[0]:
            # Only requests that stored nothing (reads, refusals): shown empty, not created.
            return Summary(key, 0, {s: 0 for s in STATUSES}, 0, 0.0, False)
        raise NotFound("resource_missing", f"No tenant {key[:40]!r} has charges or requests in this sandbox.")

    async def _chosen(self, request: Request) -> str | None:
        """`?tenant=`: a tenant with data or requests (else 404), or None for every tenant."""
        key = request.query_params.get("tenant") or None
        if key is not None:
            await self._tenant(key)
        return key

    def _confirm(self, request: Request, form: dict[str, str], question: str) -> Response | None:
        """None once the user has confirmed; else the confirmation step (the script's confirm()
        normally answers it before the form is sent, so this page is the no-script fallback)."""
        if form.get("confirmed") == "yes":
            return None
        fields = {k: v for k, v in form.items() if k != "confirmed"}
        back = request.scope["path"].rsplit("/", 1)[0] if "tenant" in request.path_params else None
        context = {"question": question, "action": request.scope["path"], "fields": fields, "back": back}
        return self._render(request, "confirm.html", context)

    # -- pages ------------------------------------------------------------------------------
    async def tenants_page(self, request: Request) -> Response:
        """Stored tenants, most recently used first, a page at a time. A token whose calls stored
        nothing has no tenant (reads create none), so it is not listed: its calls are in the journal."""
        page = page_number(request.query_params)
        listed, total = await self.tenants.summaries((page - 1) * TENANTS_PAGE_SIZE, TENANTS_PAGE_SIZE)
        dropped, last_dropped = await self.store.drops()
        journal = (await self.store.journal_stats(None))[0]
        context = {"tenants": [await tenant_row(summary, self.store) for summary in listed], "page": page}
        context |= {"total": total, "pages": max(1, -(-total // TENANTS_PAGE_SIZE)), "size": TENANTS_PAGE_SIZE}
        context |= {"dropped": dropped, "last_dropped": last_dropped, "max_tenants": self.store.max_tenants}
        context |= {"journal": bool(journal), "api": _api_url(request, self.api_prefix)}
        live = version("tenants", sorted(context.items()))
        return self._unchanged(request, live) or self._render(request, "tenants.html", context, live=live)

    async def charges_page(self, request: Request) -> Response:
        state = await self._tenant(request.path_params["tenant"])
        status = request.query_params.get("status") or None
        if status is not None and status not in STATUSES:
            raise InvalidRequest("parameter_invalid", f"status must be one of {', '.join(STATUSES)}.", "status")
        page = page_number(request.query_params)
        charges, total = await self.store.page(state.key, status, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        counts, api = state.counts, _api_url(request, self.api_prefix)
        facts = [charge_facts(c) for c in charges]
        live = version("charges", state.key, status, page, total, state.charges, counts, facts, api)
        if unchanged := self._unchanged(request, live):
            return unchanged
        context = {"tenant": state, "charges": charges, "total": total, "status": status, "page": page}
        context |= {"pages": max(1, -(-total // PAGE_SIZE)), "counts": counts, "size": PAGE_SIZE}
        context |= {"max_seed": MAX_SEED, "max_clock": MAX_CLOCK_ADVANCE, "api": api}
        return self._render(request, "charges.html", context, live=live)

    async def charge_page(self, request: Request) -> Response:
        state = await self._tenant(request.path_params["tenant"])
        charge = await self.store.charge(state.key, request.path_params["charge"])
        if charge is None:
            raise NotFound("resource_missing", f"No such charge: {request.path_params['charge'][:100]!r}.", "id")
        rule = (await self.tenants.rules(state.key)).by_name.get(("charge", charge.scenario or ""))
        refunds = await self.store.refunds(state.key, charge.id)
        live = version("charge", state.key, charge_facts(charge), len(refunds), rule.source if rule else None)
        if unchanged := self._unchanged(request, live):
            return unchanged
        pending = charge.status == "pending" or charge.settled_at is not None
        timeline = [Event(charge.created, "Created", "pending" if pending else charge.status)]
        if charge.settle_at is not None:
            timeline.append(Event(charge.settle_at, f"Settles to {charge.settle_to}", None, True))
        elif charge.settled_at is not None:
            timeline.append(Event(charge.settled_at, "Settled", charge.status))
        timeline += [Event(r.created, f"Refunded {money(r.amount, charge.currency)}") for r in refunds]
        # The requests and events about the charge sit outside the live region: the poll reads neither.
        polled, events = request.query_params.get("fragment") == LIVE, []
        entries = [] if polled else rows(await charge_requests(self.store, state.key, charge.id))
        if not polled:
            about = charge_events(await self.store.events(state.key), charge.id)
            sent = await self._deliveries(state.key)
            events = await event_rows(self.store, state.key, about, {charge.id: charge.currency}, sent)
        context = {"tenant": state, "charge": charge, "rule": rule, "refunds": refunds, "timeline": timeline}
        context |= {"wire": charge.wire(), "entries": entries, "events": events, "kept": EVENTS_KEPT}
        return self._render(request, "charge.html", context, live=live)

    async def events_page(self, request: Request) -> Response:
        """A tenant's events, newest first, a page at a time; `?type=` shows one type, or one object's
        (`charge.*`). Read when opened, as GET /__sandbox/events reads them, and not polled."""
        state = await self._tenant(request.path_params["tenant"])
        kind, page = event_kind(request.query_params), page_number(request.query_params)
        every = await self.store.events(state.key)
        matching = [event for event in reversed(every) if of_kind(event, kind)]
        shown = matching[(page - 1) * EVENTS_PAGE_SIZE : page * EVENTS_PAGE_SIZE]
        sent = await self._deliveries(state.key)
        context = {"tenant": state, "events": await event_rows(self.store, state.key, shown, None, sent), "kind": kind}
        context |= {"webhooks": await self._webhooks.hooks(state.key) if self._webhooks is not None else []}
        context |= {"counts": event_counts(every), "all": len(every), "total": len(matching), "page": page}
        context |= {"pages": max(1, -(-len(matching) // EVENTS_PAGE_SIZE)), "size": EVENTS_PAGE_SIZE}
        return self._render(request, "events.html", context | {"kept": EVENTS_KEPT})

    async def requests_page(self, request: Request) -> Response:
        entries, matching = await newest(self.store, Filter.of(request.query_params), LIVE_ROWS)
        context = {"entries": rows(entries), "matching": matching, "cursor": await self._cursor(), "limit": LIVE_ROWS}
        return self._render(request, "requests.html", context | {"tenants": await self._suggested()})

    async def _cursor(self) -> str:
        return (await self.store.journal_stats(None))[2]

    async def requests_feed(self, request: Request) -> Response:
        """The entries newer than `after` (a request id), for the live list; `reset` when `after`
        is gone (the tenant was reset, or the ring buffer moved past it): the list starts over."""
        match, after, cursor = (
            Filter.of(request.query_params),
            request.query_params.get("after", ""),
            await self._cursor(),
        )
        if after == cursor:  # nothing new, whatever the filter: most polls, answered without a walk
            return json_response(200, {"cursor": cursor, "reset": False, "count": 0, "html": ""})
        arrived = await self.store.entries_after(after)
        found = arrived is not None
        fresh = [
            entry for entry in (arrived if arrived is not None else await self.store.entries(None)) if match(entry)
        ]
        html = self._html(request, "requests.html", {"entries": rows(fresh[:LIVE_ROWS])}, "rows")
        return json_response(200, {"cursor": cursor, "reset": not found, "count": len(fresh), "html": html})

    async def scenarios_page(self, request: Request) -> Response:
        key = await self._chosen(request)
        rules = await self.tenants.rules(key)
        listed, _ = await self.store.summaries(0, self.store.max_tenants)
        overridden = [summary.key for summary in listed if summary.has_rules][:SUGGESTED]
        context = {"rules": rules.rules, "tenant": key, "files": self.tenants.payments.rules.fingerprints}
        return self._render(request, "scenarios.html", context | {"overridden": overridden, "profiles": PROFILES})

    async def findings_page(self, request: Request) -> Response:
        """What the client got wrong (one tenant's, or every tenant's), newest first, each with the
        calls involved; `?code=` shows one code. Read as GET /__sandbox/findings reads it."""
        key, code = await self._chosen(request), request.query_params.get("code") or None
        if code is not None and code not in CODES:
            raise InvalidRequest("parameter_invalid", f"code must be one of {', '.join(CODES)}.", "code")
        found = await findings_of(self.tenants, key)
        counts = counted(found, CODES)
        shown = [finding for finding in reversed(found) if code is None or finding["code"] == code][:FINDINGS_ROWS]
        wanted = {call for finding in shown for call in finding["requests"]}
        calls = by_id(await self.store.entries(key), wanted) if wanted else {}
        context = {"findings": finding_rows(shown, calls), "counts": counts, "total": len(found), "code": code}
        context |= {"tenant": key, "tenants": await self._suggested(), "limit": FINDINGS_ROWS, "advice": ADVICE}
        return self._render(request, "findings.html", context)

    async def coverage_page(self, request: Request) -> Response:
        """The scenario rules, error codes and faults the client met and never met, as GET
        /__sandbox/coverage reads them; each rule linked to its row of the catalog."""
        key = await self._chosen(request)
        coverage = await coverage_of(self.tenants, key)
        kinds = {name: kind for kind, name in (await self.tenants.rules(key)).by_name}
        context = {"coverage": coverage, "tenant": key, "tenants": await self._suggested(), "kinds": kinds}
        return self._render(request, "coverage.html", context)

    async def request_page(self, request: Request) -> Response:
        """One call of a tenant's journal, opened, with every finding it is part of."""
        state, wanted = await self._tenant(request.path_params["tenant"]), request.path_params["request"]
        entries = await self.store.entries(state.key)
        entry = next((e for e in entries if e.id == wanted), None)
        if entry is None:
            message = f"No request {wanted[:100]!r} in the journal of tenant {state.key} (reset, or too old?)."
            raise NotFound("resource_missing", message, "id")
        found = [f for f in await findings_of(self.tenants, state.key) if wanted in f["requests"]]
        calls = by_id(entries, {call for finding in found for call in finding["requests"]})
        context = {"tenant": state, "entry": rows([entry])[0], "findings": finding_rows(found, calls)}
        return self._render(request, "request.html", context)

    async def _suggested(self) -> list[str]:
        """Tenants a filter offers, most recently used first."""
        return [summary.key for summary in (await self.store.summaries(0, SUGGESTED))[0]]

    # -- actions (POST only; guard.refuse_cross_site is why no CSRF token is needed) ---------------------------
    async def login(self, request: Request) -> Response:
        """GET: the sign-in form. POST: check the token, and keep it in a cookie the script can't read."""
        expected = self.settings.control_token
        if expected is None:
            return _redirect(request, "/")
        if request.method == "GET":
            return self._render(request, "login.html", {"next": request.query_params.get("next", ""), "error": None})
        form = await self._form(request)
        if not hmac.compare_digest(form.get("token", "").encode(), expected.encode()):
            context = {"next": form.get("next", ""), "error": "That is not this sandbox's control token."}
            return self._render(request, "login.html", context, 401)
        base, target = request.scope.get("root_path", ""), form.get("next", "")
        # Only a page of this dashboard: never an open redirect to another site.
        target = target if target.startswith(base + "/") and "//" not in target and "\\" not in target else ""
        response = RedirectResponse(target or base + "/", 303)
        response.set_cookie(COOKIE, expected, httponly=True, samesite="strict", path=base + "/")
        return response

    async def logout(self, request: Request) -> Response:
        response = _redirect(request, "/ui/login")
        response.delete_cookie(COOKIE, path=request.scope.get("root_path", "") + "/", httponly=True, samesite="strict")
        return response

    async def find(self, request: Request) -> Response:
        """Open the tenant of an API token (hashed here; the token itself is never shown or kept)."""
        token = (await self._form(request)).get("token", "").strip()
        if not token:
            raise InvalidRequest("parameter_invalid", "Enter the token your app sends as `Bearer <token>`.", "token")
        key = self.auth.tenant_of(f"Bearer {token}")
        await self.store.tenant(key, create=True)  # an explicit "open": the tenant exists from now on, empty
        return _redirect(request, f"/ui/tenants/{key}")

    async def reset(self, request: Request) -> Response:
        form, key = await self._form(request), request.path_params.get("tenant")
        if key is not None:
            await self._tenant(key)
        what = f"tenant {key}? Its charges, refunds, requests, clock and overrides" if key else "every tenant? All data"
        asked = self._confirm(request, form, f"Reset {what} will be deleted.")
        if asked is not None:
            return asked
        await self.tenants.reset(key)
        return _redirect(request, "/?" + urlencode({"notice": "reset", "tenant": key or ""}))

    async def advance_clock(self, request: Request) -> Response:
        form, key = await self._form(request), request.path_params["tenant"]
        seconds = whole(form.get("seconds", ""))
        if seconds is None or not 0 <= seconds <= MAX_CLOCK_ADVANCE:
            raise InvalidRequest("parameter_invalid", f"seconds must be a whole number from 0 to {MAX_CLOCK_ADVANCE}.")
        await self._tenant(key)
        asked = self._confirm(request, form, f"Advance the clock of tenant {key} by {seconds} seconds?")
        if asked is not None:
            return asked
        await self.tenants.advance_clock(key, seconds)
        return _redirect(request, f"/ui/tenants/{key}?" + urlencode({"notice": "advanced", "n": str(seconds)}))

    async def seed(self, request: Request) -> Response:
        form, key = await self._form(request), request.path_params["tenant"]
        count, seed = whole(form.get("count", "20")), form.get("seed", "")
        if count is None or not 1 <= count <= MAX_SEED or (seed and whole(seed) is None):
            raise InvalidRequest("parameter_invalid", f"count must be 1 to {MAX_SEED}; seed a whole number or blank.")
        await self._tenant(key)
        asked = self._confirm(request, form, f"Create {count} fake charges for tenant {key}?")
        if asked is not None:
            return asked
        # A blank seed picks a fresh one, so that each click adds different charges.
        made = await self.tenants.seed(key, count, (whole(seed) or 0) if seed else random.randrange(2**31))
        return _redirect(request, f"/ui/tenants/{key}?" + urlencode({"notice": "seeded", "n": len(made)}))


def _check_notice(query: Mapping[str, str]) -> None:
    """`?n=`, the number a notice shows (charges seeded, seconds advanced): ASCII digits, or a 400."""
    if query.get("n") is not None and whole(query.get("n")) is None:
        raise InvalidRequest("parameter_invalid", "n must be a whole number in ASCII digits.", "n")


def _api_url(request: Request, prefix: str) -> str:
    return str(request.base_url).rstrip("/") + prefix


def _redirect(request: Request, path: str) -> Response:
    return RedirectResponse(request.scope.get("root_path", "") + path, 303)

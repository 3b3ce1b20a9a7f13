"""The dashboard: HTML pages under /__sandbox/ showing what client apps did to the sandbox.

Owns the browser's view of the sandbox: the pages (tenants, a tenant's charges, a charge, the
live request journal, the scenario catalog) rendered with Jinja2 from `templates/`, the stylesheet
and script in `static/`, the login cookie that stands for `--control-token`, and the actions
(reset, advance the clock, seed) a developer takes from a page. It reads the same `Payments`,
`Journal` and `Settings` objects as the control API and changes state exactly as that API does.
"""

from __future__ import annotations

import hmac
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sandbox import __version__
from sandbox.api import json_response, read_body
from sandbox.auth import Auth
from sandbox.control import MAX_CLOCK_ADVANCE, MAX_SEED, Control, Endpoint
from sandbox.errors import ApiError, InvalidRequest, NotFound, Unauthorized
from sandbox.guard import refuse_cross_site
from sandbox.models import rfc3339
from sandbox.numbers import whole
from sandbox.payments import Payments
from sandbox.settings import Settings
from sandbox.store import STATUSES, Journal, Tenant

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).resolve().parent
COOKIE = "sandbox_control_token"
PAGE_SIZE = 25
LIVE_ROWS = 200  # newest journal entries a requests page holds
# ISO 4217 minor units of the currencies that do not have 2: amounts are in minor units.
_EXPONENT = {c: 0 for c in ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX")}
_EXPONENT |= {c: 0 for c in ("UYI", "VND", "VUV", "XAF", "XOF", "XPF")}
_EXPONENT |= {c: 3 for c in ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")}
_SYMBOL = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "KRW": "₩", "INR": "₹", "CAD": "CA$", "AUD": "A$"}
_SECURITY_HEADERS = {
    # No inline script or style anywhere, and no framing: a page of buttons that reset state must
    # not be clickjackable.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Event(NamedTuple):
    """One step of a charge's timeline; `at` is None when the sandbox did not record the time."""

    at: float | None
    what: str
    status: str | None = None
    future: bool = False


def money(amount: int, currency: str) -> str:
    """Minor units as a person reads them: 123456 USD -> $1,234.56 USD; 5000 JPY -> ¥5,000 JPY."""
    exponent = _EXPONENT.get(currency, 2)
    whole, minor = divmod(amount, 10**exponent)
    return f"{_SYMBOL.get(currency, '')}{whole:,}{f'.{minor:0{exponent}d}' if exponent else ''} {currency}"


def utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _charge_of(entry: dict[str, Any]) -> str | None:
    """The charge a journal entry created, read, refunded or was declined for."""
    body, sent = entry.get("response_body"), entry.get("request_body")
    found = [body.get("id"), (body.get("error") or {}).get("charge")] if isinstance(body, dict) else []
    found += [sent.get("charge_id")] if isinstance(sent, dict) else []
    found += [entry["path"].rsplit("/", 1)[-1]]
    return next((c for c in found if isinstance(c, str) and c.startswith("ch_")), None)


class Dashboard:
    def __init__(self, payments: Payments, journal: Journal, auth: Auth, control: Control, settings: Settings) -> None:
        self.payments = payments
        self.auth = auth
        self.control = control
        self.journal = journal
        self.settings = settings

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
            (tenant, self.charges_page, "GET"),
            (tenant + "/charges/{charge}", self.charge_page, "GET"),
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
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(money=money, utc=utc, pretty=pretty)
        env.globals.update(version=__version__, statuses=STATUSES, login=self.settings.control_token is not None)
        return env

    def _html(self, request: Request, name: str, context: dict[str, Any], block: str | None = None) -> str:
        """A template, or one of its blocks: `?fragment=live` is the part of a page the script polls."""
        template = self._env.get_template(name)
        context = {"base": request.scope.get("root_path", ""), "query": request.query_params, **context}
        block = block or request.query_params.get("fragment")
        if block not in template.blocks:
            return template.render(context)
        return "".join(template.blocks[block](template.new_context(context)))

    def _render(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return HTMLResponse(self._html(request, name, context), status)

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
                    back = request.url.path if request.method == "GET" else ""
                    return _redirect(request, "/ui/login?" + urlencode({"next": back}))
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

    def _tenant(self, key: str) -> Tenant:
        """A tenant with data or requests (pending charges that are due settled first), or 404."""
        if key in self.payments.store.tenants:
            return self.payments.tenant(key)
        if any(e["tenant"] == key for e in self.journal.entries):
            return Tenant(key)  # only requests so far: shown empty, not created
        raise NotFound("resource_missing", f"No tenant {key[:40]!r} has charges or requests in this sandbox.")

    def _confirm(self, request: Request, form: dict[str, str], question: str) -> Response | None:
        """None once the user has confirmed; else the confirmation step (the script's confirm()
        normally answers it before the form is sent, so this page is the no-script fallback)."""
        if form.get("confirmed") == "yes":
            return None
        fields = {k: v for k, v in form.items() if k != "confirmed"}
        back = request.url.path.rsplit("/", 1)[0] if "tenant" in request.path_params else None
        context = {"question": question, "action": request.url.path, "fields": fields, "back": back}
        return self._render(request, "confirm.html", context)

    # -- pages ------------------------------------------------------------------------------
    async def tenants_page(self, request: Request) -> Response:
        requests = Counter(e["tenant"] for e in self.journal.entries if e["tenant"])
        last_seen = {e["tenant"]: rfc3339(e["started"]) for e in self.journal.entries if e["tenant"]}
        keys = sorted(set(self.payments.store.tenants) | set(requests), key=lambda k: last_seen.get(k, ""))
        rows = []
        for key in reversed(keys):  # most recently active first
            state = self._tenant(key)
            if state.charges or state.refunds or requests[key]:
                counts = Counter(c.status for c in state.charges.values())
                rows.append({"state": state, "counts": counts, "requests": requests[key], "last": last_seen.get(key)})
        return self._render(request, "tenants.html", {"tenants": rows, "api": _api_url(request)})

    async def charges_page(self, request: Request) -> Response:
        state = self._tenant(request.path_params["tenant"])
        status = request.query_params.get("status") or None
        if status is not None and status not in STATUSES:
            raise InvalidRequest("parameter_invalid", f"status must be one of {', '.join(STATUSES)}.", "status")
        page = request.query_params.get("page", "1")
        page_no = whole(page)
        if page_no is None or not 1 <= page_no <= 10**9:
            raise InvalidRequest("parameter_invalid", "page must be a whole number from 1.", "page")
        rows, total = state.page(status, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)
        counts = Counter(c.status for c in state.charges.values())
        context = {"tenant": state, "charges": rows, "total": total, "status": status, "page": page_no}
        context |= {"pages": max(1, -(-total // PAGE_SIZE)), "counts": counts, "size": PAGE_SIZE}
        context |= {"max_seed": MAX_SEED, "max_clock": MAX_CLOCK_ADVANCE, "api": _api_url(request)}
        return self._render(request, "charges.html", context)

    async def charge_page(self, request: Request) -> Response:
        state = self._tenant(request.path_params["tenant"])
        charge = state.charges.get(request.path_params["charge"])
        if charge is None:
            raise NotFound("resource_missing", f"No such charge: {request.path_params['charge'][:100]!r}.", "id")
        rule = self.payments.rules_for(state).by_name.get(("charge", charge.scenario or ""))
        refunds = state.refunds_of.get(charge.id, [])
        pending = charge.status == "pending" or charge.settled_at is not None
        timeline = [Event(charge.created, "Created", "pending" if pending else charge.status)]
        if charge.settle_at is not None:
            timeline.append(Event(charge.settle_at, f"Settles to {charge.settle_to}", None, True))
        elif charge.settled_at is not None:
            timeline.append(Event(charge.settled_at, "Settled", charge.status))
        timeline += [Event(r.created, f"Refunded {money(r.amount, charge.currency)}") for r in refunds]
        entries = [
            e
            for e in self.journal.entries
            if e["tenant"] == state.key and _mentions(e, charge.id) and _charge_of(Journal.view(e)) == charge.id
        ]
        context = {"tenant": state, "charge": charge, "rule": rule, "refunds": refunds, "timeline": timeline}
        context |= {"wire": charge.wire(), "entries": _rows(entries[::-1])}
        return self._render(request, "charge.html", context)

    def _matcher(self, request: Request) -> Callable[[dict[str, Any]], bool]:
        query = request.query_params
        tenant, method, path = query.get("tenant"), query.get("method", "").upper(), query.get("path", "")
        status = query.get("status", "").lower()
        if status and not re.fullmatch(r"[1-5](\d\d|xx)", status):
            raise InvalidRequest("parameter_invalid", "status must be an HTTP status such as 402, or a class: 4xx.")

        def match(e: dict[str, Any]) -> bool:
            code = str(e["status"])
            return (
                (not tenant or e["tenant"] == tenant)
                and (not method or e["method"] == method)
                and path in e["path"] + ("?" + e["query"] if e["query"] else "")
                and (not status or code == status or (status[1:] == "xx" and code[0] == status[0]))
            )

        return match

    async def requests_page(self, request: Request) -> Response:
        match = self._matcher(request)
        matching = [e for e in reversed(self.journal.entries) if match(e)]
        cursor = self.journal.entries[-1]["id"] if self.journal.entries else ""
        context = {"entries": _rows(matching[:LIVE_ROWS]), "matching": len(matching), "cursor": cursor}
        context |= {"tenants": sorted({e["tenant"] for e in self.journal.entries if e["tenant"]}), "limit": LIVE_ROWS}
        return self._render(request, "requests.html", context)

    async def requests_feed(self, request: Request) -> Response:
        """The entries newer than `after` (a request id), for the live list; `reset` when `after`
        is gone (the tenant was reset, or the ring buffer moved past it): the list starts over."""
        match, after = self._matcher(request), request.query_params.get("after", "")
        fresh, found = [], not after
        for entry in reversed(self.journal.entries):
            if entry["id"] == after:
                found = True
                break
            if match(entry):
                fresh.append(entry)
        html = self._html(request, "requests.html", {"entries": _rows(fresh[:LIVE_ROWS])}, "rows")
        cursor = self.journal.entries[-1]["id"] if self.journal.entries else ""
        return json_response(200, {"cursor": cursor, "reset": not found, "count": len(fresh), "html": html})

    async def scenarios_page(self, request: Request) -> Response:
        key = request.query_params.get("tenant")
        state = self._tenant(key) if key else None
        rules = self.payments.rules_for(state) if state else self.payments.rules
        overridden = [k for k, t in self.payments.store.tenants.items() if t.rules is not None]
        context = {"rules": rules.rules, "tenant": key, "files": self.payments.rules.fingerprints}
        return self._render(request, "scenarios.html", context | {"overridden": overridden})

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
        self.payments.tenant(key)  # an explicit "open": the tenant exists from now on, empty (counted in --max-tenants)
        return _redirect(request, f"/ui/tenants/{key}")

    async def reset(self, request: Request) -> Response:
        form, key = await self._form(request), request.path_params.get("tenant")
        if key is not None:
            self._tenant(key)
        what = f"tenant {key}? Its charges, refunds, requests, clock and overrides" if key else "every tenant? All data"
        asked = self._confirm(request, form, f"Reset {what} will be deleted.")
        if asked is not None:
            return asked
        self.payments.reset(key)
        self.journal.forget(key)
        return _redirect(request, "/?" + urlencode({"notice": "reset", "tenant": key or ""}))

    async def advance_clock(self, request: Request) -> Response:
        form, key = await self._form(request), request.path_params["tenant"]
        seconds = whole(form.get("seconds", ""))
        if seconds is None or not 0 <= seconds <= MAX_CLOCK_ADVANCE:
            raise InvalidRequest("parameter_invalid", f"seconds must be a whole number from 0 to {MAX_CLOCK_ADVANCE}.")
        self._tenant(key)
        asked = self._confirm(request, form, f"Advance the clock of tenant {key} by {seconds} seconds?")
        if asked is not None:
            return asked
        self.payments.advance_clock(key, seconds)
        return _redirect(request, f"/ui/tenants/{key}?" + urlencode({"notice": "advanced", "n": str(seconds)}))

    async def seed(self, request: Request) -> Response:
        form, key = await self._form(request), request.path_params["tenant"]
        count, seed = whole(form.get("count", "20")), form.get("seed", "")
        if count is None or not 1 <= count <= MAX_SEED or (seed and whole(seed) is None):
            raise InvalidRequest("parameter_invalid", f"count must be 1 to {MAX_SEED}; seed a whole number or blank.")
        self._tenant(key)
        asked = self._confirm(request, form, f"Create {count} fake charges for tenant {key}?")
        if asked is not None:
            return asked
        # A blank seed picks a fresh one, so that each click adds different charges.
        made = await self.control.seed_tenant(key, count, (whole(seed) or 0) if seed else random.randrange(2**31))
        return _redirect(request, f"/ui/tenants/{key}?" + urlencode({"notice": "seeded", "n": len(made)}))


def _mentions(entry: dict[str, Any], charge_id: str) -> bool:
    """A quick test before parsing: whether a journal entry names the charge anywhere."""
    token = charge_id.encode()
    return charge_id in entry["path"] or token in (entry["request_body"] or b"") or token in entry["response_body"]


def _rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Journal entries as the templates show them, each with the charge it is about."""
    views = [Journal.view(e) for e in entries]
    return [{**e, "charge": _charge_of(e)} for e in views]


def _api_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/v1/payments"


def _redirect(request: Request, path: str) -> Response:
    return RedirectResponse(request.scope.get("root_path", "") + path, 303)

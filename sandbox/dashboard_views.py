"""What the dashboard's pages show, read at a cost of about one page however much the sandbox holds.

With 10,000 tenants and a full journal a render must not walk either, and a page left open polls
its live region every second, so:

- tenants come a page at a time, most recently used first, with counts the store keeps up to date;
- the newest requests come from the store's journal, newest first, a page at a time when only a
  tenant filters them (the store counts each tenant's entries);
- each live region has a *version*, a short digest of exactly the values it shows, computed from the
  page's rows before anything is rendered. The script sends back the version it holds; while that is
  still current the region is answered 204 without rendering (dashboard.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.errors import InvalidRequest
from sandbox.models import EVENT_KINDS, EVENT_TYPES, Charge, Entry, Event, Summary, event_matches, rfc3339
from sandbox.numbers import whole
from sandbox.stores import Store

MAX_PAGE = 10**9


def page_number(query: Mapping[str, str]) -> int:
    """`?page=`: ASCII digits only (not `²`, `٣`, `+5` or `1.0`), from 1."""
    page = whole(query.get("page", "1"))
    if page is None or not 1 <= page <= MAX_PAGE:
        raise InvalidRequest("parameter_invalid", "page must be a whole number from 1, in ASCII digits.", "page")
    return page


def version(*parts: object) -> str:
    """The version of a live region: a digest of the values it shows (str, int, float, None and
    containers of them, whose `repr` is exact), 16 hex digits."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


# -- tenants ----------------------------------------------------------------------------------
async def tenant_row(summary: Summary, store: Store) -> dict[str, Any]:
    """One row of the tenants table, from counts kept up to date: nothing here walks the charges."""
    requests, last, _ = await store.journal_stats(summary.key)
    return {
        "key": summary.key,
        "charges": summary.charges,
        "counts": summary.counts,
        "refunds": summary.refunds,
        "requests": requests,
        "clock": summary.clock_offset,
        "last": rfc3339(last) if last is not None else None,
    }


def charge_facts(charge: Charge) -> tuple[object, ...]:
    """What can change about a charge after it is made (its id, amount and dates never do)."""
    return charge.id, charge.status, charge.amount_refunded, charge.failure_code, charge.settle_at, charge.settled_at


# -- the request journal ------------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    """The requests page's filter, and its feed's: a tenant, a method, a path substring, a status or class."""

    tenant: str = ""
    method: str = ""
    path: str = ""
    status: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filter:
        status = query.get("status", "").lower()
        # [0-9], not \d: Python's \d also matches the digits of other scripts (Arabic-Indic, say).
        if status and not re.fullmatch(r"[1-5](?:[0-9]{2}|xx)", status):
            raise InvalidRequest(
                "parameter_invalid", "status must be an HTTP status such as 402, or a class: 4xx.", "status"
            )
        return cls(query.get("tenant", ""), query.get("method", "").upper(), query.get("path", ""), status)

    @property
    def only_tenant(self) -> bool:
        return not (self.method or self.path or self.status)

    def __call__(self, e: Entry) -> bool:
        code = str(e.status)
        return (
            (not self.tenant or e.tenant == self.tenant)
            and (not self.method or e.method == self.method)
            and self.path in e.path + ("?" + e.query if e.query else "")
            and (not self.status or code == self.status or (self.status[1:] == "xx" and code[0] == self.status[0]))
        )


async def newest(store: Store, where: Filter, limit: int) -> tuple[list[Entry], int]:
    """The newest `limit` matching entries, newest first, and how many match in all. Unfiltered, or
    filtered by tenant alone, the store's counts say how many, so only `limit` entries are read."""
    tenant = where.tenant or None
    if where.only_tenant:
        return await store.entries(tenant, limit), (await store.journal_stats(tenant))[0]
    matching = [entry for entry in await store.entries(tenant) if where(entry)]
    return matching[:limit], len(matching)


def charge_of(entry: dict[str, Any]) -> str | None:
    """The charge a journal entry (as `Entry.view` shows it) created, read, refunded or was declined for."""
    body, sent = entry.get("response_body"), entry.get("request_body")
    found = [body.get("id"), (body.get("error") or {}).get("charge")] if isinstance(body, dict) else []
    found += [sent.get("charge_id")] if isinstance(sent, dict) else []
    found += [entry["path"].rsplit("/", 1)[-1]]
    return next((c for c in found if isinstance(c, str) and c.startswith("ch_")), None)


async def charge_requests(store: Store, tenant: str, charge_id: str) -> list[Entry]:
    """The tenant's journal entries about a charge, newest first (a byte search before any parsing)."""
    token = charge_id.encode()

    def mentions(e: Entry) -> bool:
        return charge_id in e.path or token in (e.request_body or b"") or token in e.response_body

    return [e for e in await store.entries(tenant) if mentions(e) and charge_of(e.view()) == charge_id]


def rows(entries: list[Entry]) -> list[dict[str, Any]]:
    """Journal entries as the templates show them, each with the charge it is about."""
    views = [e.view() for e in entries]
    return [{**e, "charge": charge_of(e)} for e in views]


# -- findings -------------------------------------------------------------------------------------
def by_id(entries: list[Entry], wanted: set[str]) -> dict[str, Entry]:
    """The entries among `entries` whose ids are wanted (a finding names its calls by id)."""
    return {entry.id: entry for entry in entries if entry.id in wanted}


def finding_rows(found: list[dict[str, Any]], calls: Mapping[str, Entry]) -> list[dict[str, Any]]:
    """Findings (as GET /__sandbox/findings lists them) as the templates show them: each call
    involved with its journal entry, or None once the journal has moved past it."""
    return [{**finding, "calls": [(i, calls.get(i)) for i in finding["requests"]]} for finding in found]


def counted(found: list[dict[str, Any]], codes: tuple[str, ...]) -> dict[str, int]:
    """How many findings of each code, every code listed (0 when none)."""
    counts = dict.fromkeys(codes, 0)
    for finding in found:
        counts[finding["code"]] = counts.get(finding["code"], 0) + 1
    return counts


# -- events ---------------------------------------------------------------------------------------
def event_kind(query: Mapping[str, str]) -> str | None:
    """`?type=`: an event type, or every type of an object (`charge.*`), as GET /__sandbox/events takes it."""
    kind = query.get("type") or None
    if kind is not None and kind not in EVENT_TYPES and kind not in EVENT_KINDS:
        choices = ", ".join(EVENT_KINDS + EVENT_TYPES)
        raise InvalidRequest("parameter_invalid", f"type must be one of {choices}.", "type")
    return kind


def of_kind(event: Event, kind: str | None) -> bool:
    return kind is None or event_matches(kind, event.type)


def event_counts(events: list[Event]) -> dict[str, int]:
    """How many events of each kind (charge.*, refund.*) and of each type, every one listed."""
    counts = dict.fromkeys(EVENT_KINDS + EVENT_TYPES, 0)
    for event in events:
        counts[event.type] = counts.get(event.type, 0) + 1
        counts[event.type.split(".")[0] + ".*"] += 1
    return counts


def charge_events(events: list[Event], charge_id: str) -> list[Event]:
    """The events about a charge (its own and its refunds'), newest first (a byte search before parsing)."""
    token = json.dumps(charge_id).encode()

    def about(event: Event) -> bool:
        shown: dict[str, Any] = json.loads(event.data)
        return bool((shown.get("charge_id") if event.type.startswith("refund.") else shown.get("id")) == charge_id)

    return [event for event in reversed(events) if token in event.data and about(event)]


async def event_rows(
    store: Store,
    key: str,
    events: list[Event],
    currencies: Mapping[str, str] | None = None,
    deliveries: Mapping[str, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Events as the templates show them: each with its object, the charge it is about (a refund's
    own, whose currency its amount is in), its wire form and its webhook delivery attempts. A
    refund's currency is read from its charge: from `currencies`, from a charge event shown, else
    from the store (once per charge)."""
    shown = [event.wire() for event in events]
    known = dict(currencies or {})
    for view in shown:
        if view["type"].startswith("charge."):
            known.setdefault(view["data"]["object"]["id"], view["data"]["object"]["currency"])
    found = []
    for event, view in zip(events, shown, strict=True):
        thing = view["data"]["object"]
        refund = event.type.startswith("refund.")
        charge = thing.get("charge_id") if refund else thing.get("id")
        if isinstance(charge, str) and charge not in known:
            stored = await store.charge(key, charge)
            known[charge] = stored.currency if stored is not None else ""
        row = {"id": event.id, "type": event.type, "status": event.type.split(".")[1], "created": event.created}
        row |= {"charge": charge, "refund": thing.get("id") if refund else None, "failure": thing.get("failure_code")}
        row |= {"deliveries": (deliveries or {}).get(event.id, [])}
        found.append(row | {"amount": thing.get("amount"), "currency": known.get(charge or "") or None, "wire": view})
    return found

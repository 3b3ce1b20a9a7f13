"""A bounded soak of payments-sandbox: normal and hostile traffic, and the server's memory.

    python bench/soak.py [--seconds 60] [--watch S] [--mix both|normal|hostile] [--concurrency 16]
                         [--hostile-concurrency 4] [--max-tenants 500] [--journal-size 2000]
                         [--idempotency-keys 200] [--upload-rules 2000] [--max-growth 0.10]
                         [--max-growth-mb 8] [--seed 1] [--json out.json]

It starts `payments-sandbox serve` on a free port of 127.0.0.1 (sandbox.launcher) with small bounds
(journal, idempotency store, tenant cap), so that every bounded structure fills within seconds and
must then stop growing, and runs this same script with `--drive` in a second process: an asyncio client that
sends traffic until the time is up. Meanwhile it reads the server's RSS from /proc/PID/status once a
second. At the end it counts the tenants the server holds, stops it with SIGTERM and reports the RSS
curve (per second and per 10 s window), the requests per second, and the count of every (kind of
call, status, error code).

The normal mix (`--concurrency` workers) is traffic per tenant, the way the pytest plugin and CI
use the sandbox:

- session workers play a test after another: a fresh bearer token, ~150 calls (charges,
  idempotent retries, reads, lists, partial and over-large refunds, every magic amount of the
  default scenario pack, invalid requests), then POST /__sandbox/reset for that tenant;
- two long-lived workers keep one tenant each for the whole run and send only calls that store no
  charge (scripted 500s under fresh Idempotency-Keys, replays, lists, unknown ids), so their
  idempotency store fills to its bound and stays there.

The hostile mix (`--hostile-concurrency` workers, plus one uploader) is what a careless or hostile
client can send to make the server keep memory, every request under a bearer token never seen
before:

- 60 KiB paths: a charge id (400), unknown routes inside and outside the API (404), a wrong
  method (405);
- reads (list, unknown charge) and POSTs refused for their body (400), which must create no tenant;
- valid POSTs, which create a tenant each and so fill the tenant cap (`--max-tenants`), past which
  the least recently used tenant is dropped;
- the same calls under a 15 KiB Authorization header (just under the server's 16 KiB limit for all
  headers), and a few over that limit (431);
- scenario uploads (POST /__sandbox/scenarios, YAML) in rounds of `--upload-rules` rules and a
  half, a tenth and a quarter of that, paced to a third of the server's time; the second of each
  round is refused (its last rule repeats a name), after it has been parsed in full.

Charges are the product's data and are never evicted by age; the sessions' resets and the tenant
cap keep the live ones bounded. Everything else the server keeps must level off.

The bounds are reached at the first moment by which the driver has made `--journal-size` API
calls, created `--max-tenants` tenants, filled each long-lived tenant's idempotency store, seen
each session worker finish a session and sent 128 long unknown routes (Python's urlsplit cache,
see URL_CACHE_ENTRIES), and then a round of uploads of each size. From one second later on RSS
must stay flat, for at least a quarter of the run, or for `--watch` seconds: with it, the run
stops that much after the bounds are reached (at `--seconds` at the latest), so that a short run
on a busy machine, where warming up takes longer, still watches RSS for a whole stretch.

Exit status 1 (with the reasons) when: a 5xx other than the scripted ones (500 processing_error,
503 service_unavailable, 504 gateway_timeout), or any 5xx to a hostile call; a transport error; a
response other than the one the call expects; a kind of call never made; the server not exiting 0
on SIGTERM or logging a traceback; more tenants with data at the end than --max-tenants; the
bounds not reached in time to watch RSS as long as said above; RSS at the end above RSS one second
after the bounds were reached by more than --max-growth-mb (8 MB); or, over that watched stretch,
RSS in its last third above its middle third's peak by more than --max-growth (10%).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

from sandbox.launcher import HOST, ServerProcess, StartError

API = "/v1/payments"
SCRIPTED_5XX = {(500, "processing_error"), (503, "service_unavailable"), (504, "gateway_timeout")}
SESSION_CALLS = 150
REQUEST_TIMEOUT = 30.0  # seconds; a slower answer counts as a transport error
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF")
MIXES = ("both", "normal", "hostile")

# The hostile mix. The server refuses request headers over 16 KiB in all (431), so a 15 KiB token
# is about the longest one it must accept, and a 17 KiB one must be refused. uvicorn's HTTP parser
# refuses request lines of 64 KiB and more (400, plain text), so 60 KiB is about the longest path.
LONG_PATH_CHARS = 60 * 1024
LONG_TOKEN_CHARS = 15 * 1024
OVER_LIMIT_TOKEN_CHARS = 17 * 1024
LONG_FILLER = "x" * (LONG_PATH_CHARS - 32)  # + 32 hex digits of a uuid4: each path is new
# Parsing an upload has cost the server from 0.2 to 3 ms a rule on this machine, during which it
# may answer little else; pausing twice as long as the last upload took (half a second at least)
# keeps uploads to about a third of the server's time however fast the parser and busy the machine.
UPLOAD_PAUSE = 0.5
UPLOAD_PAUSE_FACTOR = 2.0
UPLOAD_AMOUNTS = 50_000_000  # uploaded rules catch amounts from here up, which no other call sends
SETTLE_SECONDS = 1.0  # after the bounds are reached, RSS is read this much later as the baseline
TOKEN_CACHE_ENTRIES = 4096  # entries in sandbox/auth.py's caches of tenants by token
# Python 3.11's urllib.parse.urlsplit keeps its last 128 URLs (functools.lru_cache), and Starlette's
# `request.url`, which the sandbox's 404 for a route outside the API reads, goes through it: 128
# long paths (two copies each, ~120 KiB) stay until newer URLs push them out.
URL_CACHE_ENTRIES = 128
# Kind of hostile call -> weight. Unknown routes outside the API weigh most of the long paths so
# that the URL cache above fills within the first seconds of a short run.
HOSTILE_MIX = {
    "hostile-long-id": 6,
    "hostile-long-unknown-api": 6,
    "hostile-long-unknown-route": 12,
    "hostile-long-wrong-method": 3,
    "hostile-list": 8,
    "hostile-get-unknown": 7,
    "hostile-invalid": 9,
    "hostile-charge": 27,
    "hostile-long-auth-list": 6,
    "hostile-long-auth-invalid": 6,
    "hostile-long-auth-charge": 8,
    "hostile-auth-over-limit": 2,
}
HOSTILE_CALLS, HOSTILE_WEIGHTS = list(HOSTILE_MIX), list(HOSTILE_MIX.values())


# -- the driver (second process) --------------------------------------------------------------


@dataclass
class Tally:
    """What the driver saw: every call's kind and outcome, and what went wrong."""

    outcomes: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    per_second: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    mismatch_count: int = 0
    # Counts toward the server's bounds, and when each first reached its bound (s since start).
    progress: Counter[str] = field(default_factory=Counter)
    milestones: dict[str, float] = field(default_factory=dict)
    # When traffic started and when it stops. With `watch`, the run stops that many seconds (plus
    # SETTLE_SECONDS) after every `required` milestone is reached, if that is sooner.
    started: float = field(default_factory=time.monotonic)
    deadline: float = 0.0
    required: frozenset[str] = frozenset()
    watch: float | None = None

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def advance(self, what: str, bound: int) -> None:
        """Count one more `what`; note when its count first reaches `bound`."""
        self.progress[what] += 1
        if self.progress[what] != bound:
            return
        now = time.monotonic()
        self.milestones[what] = round(now - self.started, 2)
        if self.watch is not None and self.required <= self.milestones.keys():
            self.deadline = min(self.deadline, now + SETTLE_SECONDS + self.watch)


@dataclass(frozen=True)
class Bounds:
    """The server's bounds, as the conductor set them: the driver notes when traffic fills each."""

    journal_size: int
    idempotency_keys: int
    max_tenants: int
    sessions: int  # session workers: each finishing its first session is one step of warm-up


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams.

    httpx's async client spends several milliseconds of CPU per request on this machine, more than
    the server under test does, so the driver speaks HTTP itself: the sandbox always answers with
    a Content-Length, which is all the parsing needed.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(HOST, self.port)
        reader, writer = self.streams
        lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        response_headers = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                response_headers[name.strip().lower()] = value.strip()
        content = await reader.readexactly(int(response_headers.get("content-length", "0")))
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return status, response_headers, content

    async def close(self) -> None:
        if self.streams is not None:
            writer = self.streams[1]
            self.streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Worker:
    def __init__(self, port: int, tally: Tally, rng: random.Random, bounds: Bounds) -> None:
        self.connection = Connection(port)
        self.tally = tally
        self.rng = rng
        self.started = tally.started
        self.bounds = bounds
        self.token = ""

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        expect: set[int],
        *,
        json_body: Any = None,
        content: bytes = b"",
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        body = content
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        if path.startswith(API):  # what the journal records
            self.tally.advance("journal", self.bounds.journal_size)
        try:
            status, response_headers, content = await asyncio.wait_for(
                self.connection.request(method, target, sent, body), REQUEST_TIMEOUT
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as exc:
            self.tally.transport_errors[f"{kind}: {type(exc).__name__}"] += 1
            await self.connection.close()
            return 0, {}, {}
        try:
            reply = json.loads(content)
        except ValueError:
            reply = {}
        reply = reply if isinstance(reply, dict) else {}
        error = reply.get("error")
        code = error.get("code", "") if isinstance(error, dict) else ""
        self.tally.outcomes[(kind, status, code)] += 1
        self.tally.per_second[int(time.monotonic() - self.started)] += 1
        if status not in expect:
            self.tally.mismatch_count += 1
            if len(self.tally.mismatches) < 20:
                shown = target if len(target) <= 120 else f"{target[:100]}...({len(target)} chars)"
                self.tally.mismatches.append(f"{kind}: {method} {shown} -> {status} {content[:200]!r}")
        return status, reply, response_headers

    # -- session worker: one tenant per simulated test -------------------------------------
    async def session(self) -> None:
        for n in itertools.count():
            if not self.tally.running():
                break
            self.token = f"soak-session-{uuid4().hex}"
            charges: dict[str, int] = {}  # id -> amount left to refund
            for _ in range(SESSION_CALLS):
                if not self.tally.running() or not await self.session_call(charges):
                    break
            await self.call("reset", "POST", "/__sandbox/reset", {200})
            if n == 0:  # from now on the sessions' live charges come and go at a steady rate
                self.tally.advance("sessions", self.bounds.sessions)

    async def charge(self, kind: str, amount: int, expect: set[int], key: str | None = None) -> tuple[int, Any]:
        # With a key the body is fixed, so that a retry with the key is the same request.
        if key:
            body = {"amount": amount, "currency": "USD", "description": "soak"}
        else:
            body = {"amount": amount, "currency": self.rng.choice(CURRENCIES), "description": f"soak {kind}"}
        headers = {"Idempotency-Key": key} if key else {}
        status, reply, _ = await self.call(kind, "POST", f"{API}/charge", expect, json_body=body, headers=headers)
        return status, reply

    async def session_call(self, charges: dict[str, int]) -> bool:
        """One call of a session; False when the session must end after it."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.30:
            key = uuid4().hex
            amount = rng.randint(1, 99_999)
            body = {"amount": amount, "currency": "USD", "metadata": {"n": str(amount)}}
            status, reply, _ = await self.call(
                "charge", "POST", f"{API}/charge", {200}, json_body=body, headers={"Idempotency-Key": key}
            )
            if status == 200:
                charges[reply["id"]] = amount
                if rng.random() < 0.3:
                    _, again, headers = await self.call(
                        "charge-replay",
                        "POST",
                        f"{API}/charge",
                        {200},
                        json_body=body,
                        headers={"Idempotency-Key": key},
                    )
                    if headers.get("idempotent-replayed") != "true" or again.get("id") != reply["id"]:
                        self.tally.mismatch_count += 1
                        self.tally.mismatches.append(f"charge-replay: not a replay of {reply['id']}: {again}")
        elif roll < 0.45 and charges:
            charge_id = rng.choice(list(charges))
            await self.call("get", "GET", f"{API}/charge/{charge_id}", {200})
        elif roll < 0.50:
            await self.call("get-unknown", "GET", f"{API}/charge/ch_{uuid4().hex[:24]}", {404})
        elif roll < 0.60:
            params: dict[str, Any] = {"limit": rng.randint(1, 100), "offset": rng.randint(0, 50)}
            if rng.random() < 0.5:
                params["status"] = rng.choice(("succeeded", "pending", "failed"))
            await self.call("list", "GET", f"{API}/charges", {200}, params=params)
        elif roll < 0.70 and any(charges.values()):
            charge_id = rng.choice([c for c, left in charges.items() if left])
            amount = rng.randint(1, charges[charge_id])
            status, _, _ = await self.call(
                "refund", "POST", f"{API}/refund", {200}, json_body={"charge_id": charge_id, "amount": amount}
            )
            if status == 200:
                charges[charge_id] -= amount
        elif roll < 0.73 and charges:
            charge_id = rng.choice(list(charges))
            await self.call(
                "refund-too-large",
                "POST",
                f"{API}/refund",
                {400},
                json_body={"charge_id": charge_id, "amount": charges[charge_id] + 1},
            )
        elif roll < 0.78:
            amount = rng.choice((100005, 100051, 100054))
            await self.charge("decline", amount, {400})
        elif roll < 0.81:
            await self.charge("processing-error", 100096, {500})
        elif roll < 0.84:
            await self.charge("rate-limited", 100429, {429})
        elif roll < 0.87:
            body = {"amount": 100503, "currency": "USD", "description": f"unavailable once {uuid4().hex}"}
            await self.call("unavailable-once", "POST", f"{API}/charge", {503}, json_body=body)
            await self.call("unavailable-retry", "POST", f"{API}/charge", {200}, json_body=body)
        elif roll < 0.90:
            key = uuid4().hex
            await self.charge("timeout-after-commit", 100504, {504}, key)
            await self.charge("timeout-retry", 100504, {200}, key)
        elif roll < 0.93:
            await self.charge("pending", rng.choice((100202, 100203)), {200})
        elif roll < 0.95:
            status, reply = await self.charge("refundable", 100062, {200})
            if status == 200:
                await self.call("refund-failed", "POST", f"{API}/refund", {400}, json_body={"charge_id": reply["id"]})
        elif roll < 0.998:
            body = {"amount": rng.choice((0, -5, 100_000_000)), "currency": "usd"}
            await self.call("invalid", "POST", f"{API}/charge", {400}, json_body=body)
        else:
            await self.charge("slow", 100408, {200})
            # The tenant sat idle for the 3 s delay, while the hostile mix created tenants at a
            # few hundred a second: with a small --max-tenants it may have been dropped as the
            # least recently used, which is the cap working, not a fault. A test suite idle for
            # that long on a full sandbox would lose its tenant too; this session starts afresh.
            return False
        return True

    # -- long-lived worker: one tenant for the whole run, storing no charge ----------------
    async def long_lived(self, name: str) -> None:
        self.token = f"soak-resident-{uuid4().hex}"
        keys: list[str] = []
        while self.tally.running():
            roll = self.rng.random()
            if roll < 0.6 or not keys:
                keys.append(uuid4().hex)
                status, _ = await self.charge("resident-scripted-500", 100096, {500}, keys[-1])
                if status == 500:
                    self.tally.advance(name, self.bounds.idempotency_keys)
                del keys[:-5000]
            elif roll < 0.8:
                # A key from long ago may have been evicted (then it is processed afresh): 500 either way.
                await self.charge("resident-replay", 100096, {500}, self.rng.choice(keys))
            elif roll < 0.9:
                await self.call("resident-list", "GET", f"{API}/charges", {200})
            else:
                await self.call("resident-get-unknown", "GET", f"{API}/charge/ch_{uuid4().hex[:24]}", {404})

    # -- hostile worker: every request under a token never seen before ----------------------
    def fresh_token(self, length: int = 0) -> str:
        """A bearer token no request has carried, padded to `length` characters when given."""
        self.tally.advance("tokens", TOKEN_CACHE_ENTRIES)
        token = f"soak-hostile-{uuid4().hex}"
        return token + "t" * (length - len(token))

    async def hostile(self) -> None:
        while self.tally.running():
            await self.hostile_call()

    async def hostile_call(self) -> None:
        kind = self.rng.choices(HOSTILE_CALLS, HOSTILE_WEIGHTS)[0]
        self.token = self.fresh_token()
        long_tail = LONG_FILLER + uuid4().hex
        invalid = {"amount": self.rng.choice((0, -5, 100_000_000)), "currency": "usd"}
        match kind:
            case "hostile-long-id":
                await self.call(kind, "GET", f"{API}/charge/{long_tail}", {400})
            case "hostile-long-unknown-api":
                await self.call(kind, "GET", f"{API}/{long_tail}", {404})
            case "hostile-long-unknown-route":
                await self.call(kind, "GET", f"/{long_tail}", {404})
                self.tally.advance("url-cache", URL_CACHE_ENTRIES)
            case "hostile-long-wrong-method":
                await self.call(kind, "DELETE", f"{API}/charge/{long_tail}", {405})
            case "hostile-list":
                await self.call(kind, "GET", f"{API}/charges", {200})
            case "hostile-get-unknown":
                await self.call(kind, "GET", f"{API}/charge/ch_{uuid4().hex[:24]}", {404})
            case "hostile-invalid":
                await self.call(kind, "POST", f"{API}/charge", {400}, json_body=invalid)
            case "hostile-charge":
                await self.new_tenant_charge(kind)
            case "hostile-long-auth-list":
                self.token = self.fresh_token(LONG_TOKEN_CHARS)
                await self.call(kind, "GET", f"{API}/charges", {200})
            case "hostile-long-auth-invalid":
                self.token = self.fresh_token(LONG_TOKEN_CHARS)
                await self.call(kind, "POST", f"{API}/charge", {400}, json_body=invalid)
            case "hostile-long-auth-charge":
                self.token = self.fresh_token(LONG_TOKEN_CHARS)
                await self.new_tenant_charge(kind)
            case "hostile-auth-over-limit":
                self.token = self.fresh_token(OVER_LIMIT_TOKEN_CHARS)
                await self.call(kind, "GET", f"{API}/charges", {431})

    async def new_tenant_charge(self, kind: str) -> None:
        """A valid charge under a new token: the server must make room for one more tenant."""
        body = {"amount": self.rng.randint(1, 99_999), "currency": self.rng.choice(CURRENCIES)}
        status, _, _ = await self.call(kind, "POST", f"{API}/charge", {200}, json_body=body)
        if status == 200:
            self.tally.advance("tenants", self.bounds.max_tenants)

    async def uploader(self, largest: int) -> None:
        """Scenario uploads under new tokens, paced (see UPLOAD_PAUSE), in rounds of four sizes."""
        # The refused one comes second, so that even a short run makes one.
        plan = [(largest, True), (largest // 2, False), (largest // 10, True), (largest // 4, True)]
        documents = [scenario_document(max(2, size), valid).encode() for size, valid in plan]
        for n in itertools.count():
            if not self.tally.running():
                break
            _, valid = plan[n % len(plan)]
            self.token = self.fresh_token()
            sent = time.monotonic()
            status, _, _ = await self.call(
                "hostile-upload" if valid else "hostile-upload-refused",
                "POST",
                "/__sandbox/scenarios",
                {200} if valid else {400},
                content=documents[n % len(plan)],
                headers={"Content-Type": "application/yaml"},
            )
            # Warm-up ends with a round of every size once the rest is full: only then has the
            # allocator had to find room for parsing each of them beside everything else kept.
            if status and self.tally.required - {"uploads"} <= self.tally.milestones.keys():
                self.tally.advance("uploads", len(plan))
            if valid and status == 200:
                self.tally.advance("tenants", self.bounds.max_tenants)
            pause = max(UPLOAD_PAUSE, UPLOAD_PAUSE_FACTOR * (time.monotonic() - sent))
            # uvicorn closes a keep-alive connection idle for 5 s, and a request sent as it does so
            # would fail: the next upload comes on a new connection, as an HTTP client's would.
            await self.connection.close()
            until = time.monotonic() + pause
            while self.tally.running() and time.monotonic() < until:  # the deadline may move
                await asyncio.sleep(0.2)


def scenario_document(rules: int, valid: bool) -> str:
    """YAML of `rules` scenario rules of a realistic size (~270 bytes each), each catching an amount
    of its own, so that none overlaps another and the whole document must be checked. An invalid
    document repeats the first rule's name in its last rule: it is refused only once all is read."""
    lines = ["rules:"]
    for n in range(rules):
        name = "soak_rule_0" if not valid and n == rules - 1 else f"soak_rule_{n}"
        lines += [
            f"  - name: {name}",
            "    applies_to: charge",
            f"    when: {{amount: {UPLOAD_AMOUNTS + n}, currency: EUR, metadata: {{channel: soak}}}}",
            "    then: {status: 402, error: {code: card_declined, decline_code: fraudulent,"
            " message: Declined for review.}, charge: failed, headers: {X-Soak: '1'}}",
        ]
    return "\n".join(lines) + "\n"


async def drive(args: argparse.Namespace) -> Tally:
    """Run the mix until the time is up (or, with --watch, the bounds are full and watched)."""
    normal = args.concurrency if args.mix in ("both", "normal") else 0
    hostile = args.hostile_concurrency if args.mix in ("both", "hostile") else 0
    residents = min(2, normal // 4)
    # What must be full before RSS can be expected to stay flat: every bound, the sessions' first
    # round (from then on their live charges come and go), each size of upload once. Not waited
    # for: the token caches, as 4,096 new tokens take longer than a short run on a busy machine,
    # and they are small when they hold what they should (hashes, not tokens).
    required = {"journal", *[f"idempotency-keys-{n}" for n in range(residents)]}
    required |= {"sessions"} if normal > residents else set()
    required |= {"tenants", "uploads", "url-cache"} if hostile else set()
    tally = Tally(required=frozenset(required), watch=args.watch)
    tally.deadline = tally.started + args.seconds
    bounds = Bounds(args.journal_size, args.idempotency_keys, args.max_tenants, normal - residents)
    workers = [
        Worker(args.port, tally, random.Random(args.seed * 1000 + n), bounds)
        for n in range(normal + hostile + (1 if hostile else 0))
    ]
    runs = [workers[n].long_lived(f"idempotency-keys-{n}") for n in range(residents)]
    runs += [w.session() for w in workers[residents:normal]]
    runs += [w.hostile() for w in workers[normal : normal + hostile]]
    runs += [workers[-1].uploader(args.upload_rules)] if hostile else []
    try:
        await asyncio.gather(*runs)
    finally:
        for worker in workers:
            await worker.connection.close()
    return tally


def run_driver(args: argparse.Namespace) -> int:
    tally = asyncio.run(drive(args))
    result = {
        "seconds": round(min(tally.deadline, time.monotonic()) - tally.started, 1),  # of traffic
        "outcomes": [[kind, status, code, n] for (kind, status, code), n in sorted(tally.outcomes.items())],
        "per_second": sorted(tally.per_second.items()),
        "transport_errors": dict(tally.transport_errors),
        "mismatches": tally.mismatches,
        "mismatch_count": tally.mismatch_count,
        "progress": dict(tally.progress),
        "milestones": tally.milestones,
        "required_milestones": sorted(tally.required),
    }
    Path(args.out).write_text(json.dumps(result))
    return 0


# -- the conductor (first process) ------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    """The machine's 1-minute load average: other engineers' tests share these 2 cores."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def tenants_held(port: int) -> int | None:
    """How many tenants with charges or refunds the server holds (GET /__sandbox/tenants without a
    token lists every tenant); None when it cannot say."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/__sandbox/tenants", timeout=30) as response:
            return len(json.load(response)["tenants"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_server(args: argparse.Namespace, logs: Path) -> ServerProcess:
    """The sandbox under soak (sandbox.launcher), with bounds small enough to fill within seconds."""
    flags = ["--log-level", "warning", "--journal-size", str(args.journal_size)]
    flags += ["--idempotency-keys", str(args.idempotency_keys), "--max-tenants", str(args.max_tenants)]
    try:
        return ServerProcess.start(flags, log_dir=logs, name="server", timeout=20)
    except StartError as exc:
        raise SystemExit(f"the sandbox did not start: {exc}") from None


NORMAL_KINDS = {
    "charge", "charge-replay", "get", "get-unknown", "list", "refund", "refund-too-large", "decline",
    "processing-error", "rate-limited", "unavailable-once", "unavailable-retry", "timeout-after-commit",
    "timeout-retry", "pending", "refundable", "refund-failed", "invalid", "reset",
    "resident-scripted-500", "resident-replay", "resident-list", "resident-get-unknown",
}  # fmt: skip
HOSTILE_KINDS = set(HOSTILE_MIX) | {"hostile-upload", "hostile-upload-refused"}


def thirds(samples: list[tuple[float, int]]) -> tuple[list[int], list[int], list[int]]:
    values = [rss for _, rss in samples]
    n = len(values)
    return values[: n // 3], values[n // 3 : 2 * n // 3], values[2 * n // 3 :]


def windows(
    samples: list[tuple[float, int]], cpu: list[tuple[float, float]], per_second: dict[int, int], width: int
) -> list[dict[str, Any]]:
    """RSS (min, max, at the end), requests and the server's CPU time per window of `width`
    seconds. A sample at t closes the second before it, so window (a, b] holds a < t <= b. CPU
    per request tells a server that slows down (it rises) from a machine that others keep busy
    (requests fall, CPU per request does not)."""
    rows = []
    for start in range(0, int(samples[-1][0] + width - 1e-9) if samples else 0, width):
        inside = [rss for t, rss in samples if start < t <= start + width]
        used = [c for t, c in cpu if t <= start + width]
        before = [c for t, c in cpu if t <= start] or [0.0]
        requests = sum(per_second.get(s, 0) for s in range(start, start + width))
        if inside:
            rows.append(
                {
                    "from": start,
                    "to": start + width,
                    "min_kb": min(inside),
                    "max_kb": max(inside),
                    "end_kb": inside[-1],
                    "requests": requests,
                    "server_cpu_s": round(used[-1] - before[-1], 2) if used else None,
                    "cpu_ms_per_request": round(1000 * (used[-1] - before[-1]) / requests, 3)
                    if used and requests
                    else None,
                }
            )
    return rows


def check_outcomes(
    args: argparse.Namespace, driven: dict[str, Any], outcomes: list[tuple[str, int, str, int]]
) -> list[str]:
    by_status: Counter[tuple[int, str]] = Counter()
    for _, status, code, n in outcomes:
        by_status[(status, code)] += n
    failures = []
    unscripted = {f"{s} {c}".strip(): n for (s, c), n in by_status.items() if s >= 500 and (s, c) not in SCRIPTED_5XX}
    if unscripted:
        failures.append(f"unscripted 5xx: {unscripted}")
    # Scripted codes are expected of the normal mix only: a hostile call answered 5xx is a fault.
    hostile_5xx = {f"{k} {s} {c}": n for k, s, c, n in outcomes if k in HOSTILE_KINDS and s >= 500}
    if hostile_5xx:
        failures.append(f"5xx answers to the hostile mix: {hostile_5xx}")
    if driven["transport_errors"]:
        failures.append(f"transport errors: {driven['transport_errors']}")
    if driven["mismatch_count"]:
        failures.append(f"{driven['mismatch_count']} unexpected responses, e.g. {driven['mismatches'][:5]}")
    normal = args.mix != "hostile" and args.concurrency > 0
    hostile = args.mix != "normal" and args.hostile_concurrency > 0
    expected = (NORMAL_KINDS if normal else set()) | (HOSTILE_KINDS if hostile else set())
    if missing := expected - {kind for kind, *_ in outcomes}:
        failures.append(f"kinds of call never made: {sorted(missing)}")
    return failures


def check_memory(
    args: argparse.Namespace, driven: dict[str, Any], samples: list[tuple[float, int]]
) -> tuple[list[str], dict[str, Any]]:
    """RSS while traffic ran, from one second after the bounds were all reached: at the end over
    its value then (in MB), and the last third of that stretch over its middle third (in %)."""
    failures = []
    figures: dict[str, Any] = {"rss_growth_last_over_middle": None, "bounds_reached_at": None}
    if len(samples) < 6:
        failures.append(f"only {len(samples)} RSS samples; run for at least 6 s")
    milestones: dict[str, float] = driven["milestones"]
    if missing := [m for m in driven["required_milestones"] if m not in milestones]:
        failures.append(
            f"bounds never reached: {missing} (counts {driven['progress']}); run longer or lower the bounds"
        )
        return failures, figures
    reached = figures["bounds_reached_at"] = max((milestones[m] for m in driven["required_milestones"]), default=0.0)
    after = [(t, rss) for t, rss in samples if t >= reached + SETTLE_SECONDS]
    wanted = args.watch if args.watch is not None else driven["seconds"] / 4
    watched = after[-1][0] - after[0][0] if after else 0.0
    if not after or watched < wanted - 1.0:  # a second's leeway: RSS is read once a second
        failures.append(
            f"the bounds were reached only at {reached:.1f} s, leaving {watched:.0f} s to watch RSS"
            f" (wanted {wanted:.0f} s); run longer or lower the bounds"
        )
    if not after:
        return failures, figures
    baseline, end = after[0][1], after[-1][1]
    figures |= {
        "rss_at_bounds_kb": baseline,  # RSS one second after the bounds were all reached
        "rss_max_after_bounds_kb": max(rss for _, rss in after),
        "rss_growth_after_bounds_kb": end - baseline,
        "rss_watched_seconds": watched,
    }
    if end - baseline > args.max_growth_mb * 1024:
        failures.append(
            f"RSS grew by {(end - baseline) / 1024:.1f} MB after the bounds were reached "
            f"({baseline / 1024:.1f} MB at {after[0][0]:.0f} s, {end / 1024:.1f} MB at the end; "
            f"bound {args.max_growth_mb:g} MB)"
        )
    if len(after) >= 6:
        _, middle, last = thirds(after)
        growth = figures["rss_growth_last_over_middle"] = max(last) / max(middle) - 1
        if growth > args.max_growth:
            failures.append(
                f"RSS still growing: the last third of the watched run peaks at {max(last) / 1024:.1f} MB, "
                f"{growth:.1%} over its middle third's {max(middle) / 1024:.1f} MB (bound {args.max_growth:.0%})"
            )
    return failures, figures


def analyse(
    args: argparse.Namespace, driven: dict[str, Any], server: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    outcomes = [(kind, status, code, n) for kind, status, code, n in driven["outcomes"]]
    by_status: Counter[str] = Counter()
    by_kind: dict[str, Counter[int]] = {}
    for kind, status, code, n in outcomes:
        by_status[f"{status} {code}".strip()] += n
        by_kind.setdefault(kind, Counter())[status] += n
    total = sum(n for *_, n in outcomes)
    failures = check_outcomes(args, driven, outcomes)
    exit_code, log = server["exit_code"], server["log"]
    if exit_code != 0:
        failures.append(f"the server exited with {exit_code} on SIGTERM")
    if "Traceback" in log:
        failures.append("the server logged a traceback:\n" + log[-2000:])
    held = server["tenants_held"]
    if held is None or held > args.max_tenants:
        failures.append(f"tenants with data at the end: {held}, over --max-tenants {args.max_tenants}")
    # Only while traffic runs: after it, the last slow calls drain and the server idles.
    seconds = driven["seconds"]
    samples = [(t, rss) for t, rss in server["samples"] if t <= seconds + 0.5]
    memory_failures, figures = check_memory(args, driven, samples)
    failures += memory_failures
    summary = {
        "seconds": seconds,  # of traffic
        "mix": args.mix,
        "requests": total,
        "requests_per_second": round(total / seconds),
        "by_status": dict(sorted(by_status.items())),
        "by_kind": {kind: dict(sorted(c.items())) for kind, c in sorted(by_kind.items())},
        "rss_kb": samples,  # (seconds since traffic started, VmRSS in kB), while traffic ran
        "rss_start_kb": server["rss_start_kb"],  # idle, before any traffic
        "rss_peak_kb": server["rss_peak_kb"],  # VmHWM when the traffic stopped
        "rss_end_kb": samples[-1][1] if samples else None,
        "rss_windows": windows(samples, server["cpu"], dict(driven["per_second"]), 10),
        **figures,
        "milestones": driven["milestones"],  # when traffic filled each bound (s)
        "progress": driven["progress"],
        "tenants_held_at_end": held,
        "server_cpu_seconds": server["cpu_seconds"],
        "server_log": {"bytes": len(log.encode()), "lines": log.count("\n")},
        "load_average": server["load_average"],  # 1-minute, before and after the run
        "failures": failures,
        "server_exit_code": exit_code,
        "settings": {
            "seconds": args.seconds,
            "watch": args.watch,
            "mix": args.mix,
            "concurrency": args.concurrency,
            "hostile_concurrency": args.hostile_concurrency,
            "max_tenants": args.max_tenants,
            "journal_size": args.journal_size,
            "idempotency_keys": args.idempotency_keys,
            "upload_rules": args.upload_rules,
            "seed": args.seed,
        },
        "outcomes": outcomes,
    }
    return failures, summary


def mb(kb: int | None) -> str:
    return f"{kb / 1024:.1f} MB" if kb is not None else "-"


def report(summary: dict[str, Any], per_second: dict[int, int]) -> str:
    lines = [
        f"soak: {summary['seconds']} s, {summary['requests']} requests "
        f"({summary['requests_per_second']}/s), settings {summary['settings']}",
        f"load average (1 min) before and after: {summary['load_average']}; "
        f"server CPU {summary['server_cpu_seconds']:.1f} s",
        "",
        "   t (s)   RSS (MB)   requests in that second",
    ]
    for t, rss in summary["rss_kb"]:
        lines.append(f"  {t:6.1f}   {rss / 1024:8.1f}   {per_second.get(int(t) - 1, 0):>6}")
    lines += ["", "  window (s)   RSS min / max / end (MB)   requests   server CPU (s)   CPU ms/request"]
    for w in summary["rss_windows"]:
        lines.append(
            f"  {w['from']:>4}-{w['to']:<4}   {w['min_kb'] / 1024:6.1f} / {w['max_kb'] / 1024:6.1f} / "
            f"{w['end_kb'] / 1024:6.1f}   {w['requests']:>9}   {w['server_cpu_s'] or 0:>14.1f}   "
            f"{w['cpu_ms_per_request'] or 0:>14.3f}"
        )
    lines.append(
        f"\nRSS: start {mb(summary['rss_start_kb'])} (idle), peak {mb(summary['rss_peak_kb'])} (VmHWM), "
        f"end {mb(summary['rss_end_kb'])}"
    )
    if summary["rss_growth_last_over_middle"] is not None:
        lines.append(
            "RSS growth after the bounds were reached, last third's peak over the middle third's: "
            f"{summary['rss_growth_last_over_middle']:+.1%}"
        )
    milestones = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(summary["milestones"].items(), key=lambda kv: kv[1]))
    lines.append(f"bounds filled: {milestones or 'none'}")
    if "rss_growth_after_bounds_kb" in summary:
        lines.append(
            f"bounds reached at {summary['bounds_reached_at']:.1f} s; RSS {SETTLE_SECONDS:g} s later "
            f"{mb(summary['rss_at_bounds_kb'])}, at most {mb(summary['rss_max_after_bounds_kb'])} after, "
            f"{mb(summary['rss_end_kb'])} at the end: {summary['rss_growth_after_bounds_kb'] / 1024:+.1f} MB"
        )
    lines.append(
        f"tenants with data at the end: {summary['tenants_held_at_end']} (--max-tenants "
        f"{summary['settings']['max_tenants']}); server log {summary['server_log']['lines']} lines, "
        f"{summary['server_log']['bytes']} bytes"
    )
    lines += ["", "responses by kind of call (status: count):"]
    for kind, statuses in summary["by_kind"].items():
        lines.append(f"  {kind:<30} " + "  ".join(f"{s}: {n}" for s, n in statuses.items()))
    lines += ["", "responses by status and error code:"]
    lines += [f"  {key:<32} {n:>8}" for key, n in summary["by_status"].items()]
    lines.append("")
    lines.append("FAIL:\n  " + "\n  ".join(summary["failures"]) if summary["failures"] else "PASS")
    return "\n".join(lines)


def driver_command(args: argparse.Namespace, port: int, out: Path) -> list[str]:
    """This script with --drive and the settings the driver needs."""
    passed = ["seconds", "mix", "concurrency", "hostile_concurrency", "max_tenants", "journal_size"]
    passed += ["idempotency_keys", "upload_rules", "seed"] + (["watch"] if args.watch is not None else [])
    flags = [item for name in passed for item in ("--" + name.replace("_", "-"), str(getattr(args, name)))]
    return [sys.executable, __file__, "--drive", "--port", str(port), "--out", str(out), *flags]


def conduct(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        out = Path(tmp) / "driven.json"
        load_before = load_average()
        server = start_server(args, Path(tmp))
        figures: dict[str, Any] = {"rss_start_kb": server.memory_kb(), "samples": [], "cpu": []}
        try:
            driver = subprocess.Popen(driver_command(args, server.port, out), stdin=subprocess.DEVNULL)
            started = time.monotonic()
            while driver.poll() is None:
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))
                if driver.poll() is None:
                    t = round(time.monotonic() - started, 1)
                    figures["samples"].append((t, server.memory_kb()))
                    figures["cpu"].append((t, cpu_seconds(server.pid)))
            if driver.returncode != 0:
                raise SystemExit(f"the load driver failed with exit code {driver.returncode}")
            figures["rss_peak_kb"] = server.memory_kb("VmHWM")
            figures["cpu_seconds"] = cpu_seconds(server.pid)
            figures["tenants_held"] = tenants_held(server.port)
        finally:
            figures["exit_code"] = server.stop(timeout=30)
        figures["load_average"] = [load_before, load_average()]
        figures["log"] = server.log()
        driven = json.loads(out.read_text())
        failures, summary = analyse(args, driven, figures)
    print(report(summary, dict(driven["per_second"])))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--seconds", type=float, default=60.0, help="how long to send traffic, at most with --watch (default 60)")
    add(
        "--watch",
        type=float,
        help="stop this many seconds (plus 1) after the bounds are reached, if before --seconds; "
        "so that a short run on a busy machine still watches a full stretch of RSS",
    )
    add("--mix", choices=MIXES, default="both", help="traffic: normal, hostile or both at once (default both)")
    add("--concurrency", type=int, default=16, help="workers of the normal mix (default 16)")
    add("--hostile-concurrency", type=int, default=4, help="workers of the hostile mix, plus an uploader (default 4)")
    add("--max-tenants", type=int, default=500, help="server's --max-tenants (default 500)")
    add("--journal-size", type=int, default=2000, help="server's --journal-size (default 2000)")
    add("--idempotency-keys", type=int, default=200, help="server's --idempotency-keys per tenant (default 200)")
    add("--upload-rules", type=int, default=2000, help="rules in the largest scenario upload (default 2000)")
    add("--max-growth", type=float, default=0.10, help="allowed RSS growth, last third over middle (default 0.10)")
    add("--max-growth-mb", type=float, default=8.0, help="allowed RSS growth after the bounds are reached (default 8)")
    add("--seed", type=int, default=1, help="seed of the traffic mix (default 1)")
    add("--json", help="also write the full results here")
    add("--drive", action="store_true", help=argparse.SUPPRESS)
    add("--port", type=int, help=argparse.SUPPRESS)
    add("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return run_driver(args) if args.drive else conduct(args)


if __name__ == "__main__":
    sys.exit(main())

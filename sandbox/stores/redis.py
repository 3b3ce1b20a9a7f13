"""The Redis store: state in a Redis server, shared by every worker process and host pointing at it.

`--store redis://host:port/db` (or `rediss://` for TLS). Nothing is kept only in this process (but
which tenant it touched last, so that a hot tenant's reads skip the LRU write for a second):
durability is Redis's own (run it with `appendonly yes`). Each money rule is one Lua script (redis_scripts.py),
atomic inside Redis; a refund reads the charge, lets the caller's pure `decide` judge it here, then
stores the outcome with a compare-and-set script that refuses if the charge changed meanwhile (and
`decide` runs again), which is WATCH/MULTI without holding a connection across `decide`. A process
talks to Redis over one pipelined connection (redis_link.py): the calls of a loop turn go out in one
write, and their replies come back in order.

Keys, all under `ps:`; the part in braces is the hash tag, so a cluster keeps each tenant in one slot
(a tenant whose name has a `}`, starts with `~` or is `global` is tagged `~<digest>` instead):

    ps:{<tenant>}:meta           hash: t (exists), clock, rv, up, n, succeeded, pending, failed,
                                 refunds, kseq, mseq, hooks, hseq (counters, so summaries never walk
                                 anything, and the tenant read learns how many endpoints it has)
    ps:{<tenant>}:rules          uploaded rules (the catalog's JSON)
    ps:{<tenant>}:c:<charge id>  a charge (JSON); ps:{<tenant>}:r:<charge id> its refunds, oldest first
    ps:{<tenant>}:all            zset of rows `<seq>:<id>` scored by the created second; s:<status> the same
                                 per status: a page is ZREVRANGE by rank, O(log n + limit) at any offset
    ps:{<tenant>}:settle, later  pending rows by settle_at; charge id -> its settled form
    ps:{<tenant>}:keys, korder   idempotency keys and their age order; marks: fail-first marks by age
    ps:{<tenant>}:events         list of the tenant's events (`Event.dumps()`), oldest first, the newest
                                 EVENTS_KEPT
    ps:{<tenant>}:hooks          hash: webhook endpoint id -> `<seq>:<JSON>` (the seq orders them)
    ps:{<tenant>}:att:<hook id>  list of an endpoint's delivery attempts, oldest first, the newest
                                 ATTEMPTS_KEPT; atts: the set of endpoint ids that have such a list

    ps:{global}:tenants   LRU index (tenant -> last use: microseconds of the using host's clock)
    ps:{global}:ruled     tenant -> uploaded rules it holds;  stats: uploaded in all, drops, the last drop
    ps:{global}:journal   entry ids newest first (capped at journal_size); jbody id -> entry; jof id ->
                          owner; jt:<tenant> a tenant's ids newest first; jtenants the tenants with some
    ps:{global}:q:<tenant>  zset of the tenant's queued webhook jobs `<seq>:<JSON>` by due (real unix time;
                          the seq, from `stats` field qseq, keeps equal times in the order queued)
    ps:{global}:qdue      zset: tenant -> its earliest job's due time, so `take` is one script here

Which slots each call touches (every script and transaction stays within one):
    the tenant's    charge, page, refunds, refund, settle_due, add_events, events, saved, save_reply, unmark,
                    rules, summary, hooks, remove_hook, log_attempt, attempts
    the global one  record, entries, entries_after, journal_stats, forget, drops, check, queue (a tenant
                    counts as present when listed in the index), take
    both            tenant, claim, mark, add_hook, set_rules, reset(key), add_charge: one command per
                    slot, sent together in one round trip, not atomic together; advance_clock:
                    the clock moved in the tenant's slot, then, only if it moved, the tenant's jobs in the
                    global one (two round trips: the move decides, so the jobs cannot go with it);
                    summaries (the index, then each listed tenant's counts); add_seeded (the listing, then
                    one MULTI/EXEC in the tenant's slot); reset(None): SCAN and UNLINK
A write lists the tenant in the index before it writes the tenant's data, so no data is left unlisted;
a tenant listed without data (a write racing its drop) reads as absent and is dropped in its turn.
A charge's number (`seq`, which orders the charges made in one second) is the microsecond its process
stored it at, never the same twice in a process (`_now`): taken without asking Redis, so that the
charge goes in the round trip that lists its tenant. (Earlier versions numbered charges with a store-wide
INCR: smaller numbers, so a tenant's charges stored by them still sort as the older ones.)
A tenant leaving the index (a drop, a reset) loses its queued jobs in the same script.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256
from typing import Any, TypeVar

from sandbox.models import STATUSES, Charge, Entry, Event, Refund, Reply, Saved, Summary
from sandbox.settings import Settings
from sandbox.stores import redis_scripts as lua
from sandbox.stores.base import ATTEMPTS_KEPT, EVENTS_KEPT, MAX_UPLOADED_RULES, Store, StoreUnavailable
from sandbox.stores.redis_link import Link, LinkDown, ReplyError

T = TypeVar("T")
_log = logging.getLogger("sandbox")
_TIMEOUT = 5.0  # seconds for a reply: a stuck Redis answers 503, never hangs
_CONNECT_TIMEOUT = 2.0
_READ_RETRY_DELAY = 0.05  # reads are tried twice; writes once: a write whose reply was lost may have been applied
_REFUND_ATTEMPTS = 1000  # compare-and-set rounds; each lost round means another refund went through
_TOUCH_EVERY = 1.0  # seconds: this process re-sends a read's LRU touch of its last tenant at most this often
# Error replies of a Redis that cannot serve now (a replica, out of memory, loading its data, a script
# running too long, failing to save, a cluster without a quorum): StoreUnavailable, a 503.
_UNAVAILABLE = frozenset(
    ["READONLY", "OOM", "LOADING", "BUSY", "MISCONF", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "NOREPLICAS"]
)
_G = b"ps:{global}:"
LRU, RULED, STATS = _G + b"tenants", _G + b"ruled", _G + b"stats"
JOURNAL, JBODY, JOF, JTENANTS, JT = _G + b"journal", _G + b"jbody", _G + b"jof", _G + b"jtenants", _G + b"jt:"
QDUE, Q = _G + b"qdue", _G + b"q:"
# A tenant's fixed keys, in the order DELETE_TENANT expects them (its list of all charges third, atts last).
_FIXED = tuple(
    b"meta rules all s:succeeded s:pending s:failed settle later keys korder marks events hooks atts".split()
)


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@lru_cache(maxsize=4096)
def prefix(tenant: str) -> bytes:
    """`ps:{<tag>}:` for a tenant: its name, unless that could end the tag early or pose as another's."""
    name = _b(tenant)
    if not name or len(name) > 200 or b"}" in name or name.startswith(b"~") or name == b"global":
        name = b"~" + sha256(name).hexdigest()[:32].encode()
    return b"ps:{" + name + b"}:"


def _ev(script: lua.Script, keys: Sequence[bytes], *args: Any) -> tuple[Any, ...]:
    return ("EVALSHA", script.sha, len(keys), *keys, *args)


def _finish(idempotency_key: str | None, reply: Reply | None) -> tuple[bytes, bytes, bytes]:
    """FINISH's arguments: no key, release it, or save the reply under it."""
    if idempotency_key is None:
        return b"", b"", b""
    if reply is None:
        return b"r", _b(idempotency_key), b""
    return b"s", _b(idempotency_key), _b(reply.dumps())


def _float(raw: bytes | None) -> float | None:
    return float(raw) if raw is not None else None


@dataclass(frozen=True, slots=True)
class RedisTenant:
    key: str
    clock_offset: float
    rules_version: str | None
    next_settle: float | None
    hooks: int


class RedisStore(Store):
    kind = "redis"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # No I/O and no running loop needed here: the link connects on first use.
        self._link = Link(settings.store, timeout=_TIMEOUT, connect_timeout=_CONNECT_TIMEOUT)
        self._recent: tuple[str, float] = ("", 0.0)  # the tenant this process touched last, and when
        self._stamp = 0  # the last LRU score this process gave
        self._dropped_here, self._noted, self._last_note = 0, 0, -60.0

    async def close(self) -> None:
        await self._link.close()  # calls already sent are answered first

    async def check(self) -> None:
        await self._run([("PING",)], read=True)

    # -- talking to Redis -----------------------------------------------------------------------
    async def _run(self, commands: Sequence[tuple[Any, ...]], *, read: bool = False) -> list[Any]:
        """The commands' replies, in one round trip shared with every other call made in this turn of
        the event loop (redis_link.py). The call's first error reply is raised: StoreUnavailable for
        a Redis that cannot serve (out of memory, a replica, loading...), else the ReplyError."""
        replies = await self._call(commands, read)
        # Redis forgets scripts when it restarts: load them and send again only what failed for it
        # (a script that failed with NOSCRIPT did nothing, so nothing runs twice).
        missing = [n for n, reply in enumerate(replies) if isinstance(reply, ReplyError) and reply.code == "NOSCRIPT"]
        if missing:
            await self._call([("SCRIPT", "LOAD", script.text) for script in lua.SCRIPTS], False)
            for n, reply in zip(missing, await self._call([commands[n] for n in missing], read), strict=True):
                replies[n] = reply
        for reply in replies:
            if isinstance(reply, ReplyError):
                if reply.code in _UNAVAILABLE:
                    raise StoreUnavailable(f"Redis: {reply}")
                raise reply
        return replies

    async def _call(self, commands: Sequence[tuple[Any, ...]], read: bool) -> list[Any]:
        """Redis away (refused, lost, too slow) is StoreUnavailable, which clients see as a 503 with
        Retry-After. A read whose connection broke is tried once more; a write never is (it may have
        been carried out), nor is a call that timed out (Redis is busy: do not add to it)."""
        for attempt in (1, 2):
            try:
                return await self._link.call(commands)
            except LinkDown as exc:
                if not read or exc.timed_out or attempt == 2:
                    raise StoreUnavailable(f"Redis: {exc}") from exc
            await asyncio.sleep(_READ_RETRY_DELAY)
        raise AssertionError("unreachable")

    async def _one(self, *command: Any, read: bool = False) -> Any:
        return (await self._run([command], read=read))[0]

    # -- tenants --------------------------------------------------------------------------------
    def _now(self) -> int:
        """Microseconds, for the LRU index and charge numbers: this host's clock, never the same twice
        in this process."""
        self._stamp = max(time.time_ns() // 1000, self._stamp + 1)
        return self._stamp

    def _why(self) -> str:
        return f"--max-tenants {self.max_tenants}"

    def _touch(self, key: str) -> tuple[Any, ...]:
        """A read's touch: the tenant becomes the most recently used if listed (answering 1), else 0."""
        self._recent = (key, time.monotonic())
        return ("ZADD", LRU, b"XX", b"CH", self._now(), _b(key))

    async def _creating(self, key: str, *commands: tuple[Any, ...]) -> list[Any]:
        """Commands that may create the tenant, after listing it first (so that no tenant's data is
        ever left unlisted), in one round trip; then whoever that pushed out goes."""
        self._recent = (key, time.monotonic())
        listing = _ev(lua.LIST, (LRU, RULED, STATS, QDUE), _b(key), self._now(), self.max_tenants, self._why(), Q)
        popped, *replies = await self._run([listing, *commands])
        await self._drop(popped, self._why())
        return replies

    async def tenant(self, key: str, *, create: bool = False) -> RedisTenant | None:
        p = prefix(key)
        read = _ev(lua.TENANT, (p + b"meta", p + b"settle"), b"1" if create else b"0")
        if create:
            (found,) = await self._creating(key, read)
        elif self._recent[0] == key and time.monotonic() - self._recent[1] < _TOUCH_EVERY:
            # This process made it the most recently used a moment ago: reading it needs no write.
            found = await self._one(*read, read=True)
        else:
            found, listed = await self._run([read, self._touch(key)], read=True)
            if found is not None and not listed:  # data the index lost (a write raced a drop): list it again
                await self._creating(key)
        return self._meta(key, found)

    @staticmethod
    def _meta(key: str, found: list[bytes | None] | None) -> RedisTenant | None:
        if found is None:
            return None
        clock, version, settle, hooks = found
        return RedisTenant(
            key, float(clock or 0), version.decode() if version else None, _float(settle), int(hooks or 0)
        )

    async def _drop(self, popped: Sequence[bytes], why: str) -> None:
        """Delete the data of tenants the index has just let go of (each in its own slot)."""
        if not popped:
            return
        names = [name.decode("utf-8", "surrogatepass") for name in popped]
        await self._run([self._delete(name) for name in names])
        self._dropped_here += len(names)
        now = time.time()
        # One line per drop would let a client flood the log at its own pace: at most one a minute.
        if now - self._last_note >= 60:
            unnoted = self._dropped_here - self._noted
            more = f" (and {unnoted - 1} more since the last such line)" if unnoted > 1 else ""
            _log.warning("dropped tenant %s, the least recently used, to stay within %s%s", names[-1], why, more)
            self._last_note, self._noted = now, self._dropped_here

    @staticmethod
    def _delete(key: str) -> tuple[Any, ...]:
        p = prefix(key)
        return _ev(lua.DELETE_TENANT, [p + suffix for suffix in _FIXED], p)

    async def advance_clock(self, key: str, seconds: float, real_now: float, last: float) -> RedisTenant | None:
        p = prefix(key)
        (found,) = await self._creating(key, _ev(lua.ADVANCE, (p + b"meta", p + b"settle"), seconds, real_now, last))
        if found is not None and seconds:  # it moved: its queued jobs follow (see the module docstring)
            await self._run([_ev(lua.SHIFT_JOBS, (QDUE, Q + _b(key)), _b(key), float(seconds))])
        return self._meta(key, found)

    async def rules(self, key: str) -> tuple[str, str] | None:
        p = prefix(key)
        version, document = await self._run([("HGET", p + b"meta", b"rv"), ("GET", p + b"rules")], read=True)
        if version is None or document is None:
            return None
        return version.decode(), document.decode("utf-8", "surrogatepass")

    async def set_rules(self, key: str, document: str, uploaded: int, version: str) -> None:
        p = prefix(key)
        why = f"{MAX_UPLOADED_RULES} uploaded scenario rules in all"
        _, ruled_out = await self._creating(
            key,
            _ev(lua.SET_RULES, (p + b"meta", p + b"rules"), _b(document), uploaded, _b(version)),
            _ev(lua.LIMIT_RULES, (LRU, RULED, STATS, QDUE), _b(key), uploaded, MAX_UPLOADED_RULES, why, self._now(), Q),
        )
        await self._drop(ruled_out, why)

    async def reset(self, key: str | None) -> None:
        if key is not None:
            journal = (LRU, RULED, STATS, JOURNAL, JBODY, JOF, JTENANTS, JT + _b(key), QDUE, Q + _b(key))
            await self._run([self._delete(key), _ev(lua.RESET_GLOBAL, journal, _b(key))])
            return
        # Everything of this sandbox, and nothing else: the database may hold other applications' keys.
        self._recent = ("", 0.0)
        await self._clear()

    async def _clear(self) -> None:
        cursor = b"0"
        while True:  # SCAN in batches, not KEYS or FLUSHDB: Redis keeps answering others meanwhile
            cursor, found = await self._one("SCAN", cursor, "MATCH", b"ps:*", "COUNT", 1000)
            if found:
                await self._one("UNLINK", *found)
            if cursor == b"0":
                return

    async def summary(self, key: str) -> Summary | None:
        p = prefix(key)
        found = await self._one(*_ev(lua.SUMMARY, (p + b"meta", p + b"settle")), read=True)
        return self._summary(key, found)

    @staticmethod
    def _summary(key: str, found: list[Any] | None) -> Summary | None:
        if found is None:
            return None
        pairs, settle = found
        meta = dict(zip(pairs[::2], pairs[1::2], strict=True))
        counts = {str(status): int(meta.get(_b(status), 0)) for status in STATUSES}
        clock = float(meta.get(b"clock", 0))
        has_rules = bool(int(meta.get(b"up", 0)))
        return Summary(
            key, int(meta.get(b"n", 0)), counts, int(meta.get(b"refunds", 0)), clock, has_rules, _float(settle)
        )

    async def summaries(self, offset: int, limit: int) -> tuple[list[Summary], int]:
        if limit <= 0:
            return [], int(await self._one("ZCARD", LRU, read=True))
        rows, total = await self._run(
            [("ZREVRANGE", LRU, max(offset, 0), max(offset, 0) + limit - 1), ("ZCARD", LRU)], read=True
        )
        names = [row.decode("utf-8", "surrogatepass") for row in rows]
        reads = [_ev(lua.SUMMARY, (prefix(name) + b"meta", prefix(name) + b"settle")) for name in names]
        found = await self._run(reads, read=True) if reads else []
        listed = [self._summary(name, meta) for name, meta in zip(names, found, strict=True)]
        return [summary for summary in listed if summary is not None], int(total)

    async def drops(self) -> tuple[int, tuple[str, float, str] | None]:
        count, key, at, why = await self._one("HMGET", STATS, b"drops", b"last_key", b"last_at", b"last_why", read=True)
        last = (key.decode("utf-8", "surrogatepass"), float(at), why.decode()) if key is not None else None
        return int(count or 0), last

    # -- charges and refunds ------------------------------------------------------------------
    async def settle_due(self, key: str, now: float) -> list[Charge]:
        p = prefix(key)
        lists = (p + b"s:succeeded", p + b"s:pending", p + b"s:failed")
        settled = await self._one(*_ev(lua.SETTLE, (p + b"meta", p + b"settle", p + b"later", *lists), float(now), p))
        return [lua.charge_of(raw) for raw in settled]

    async def add_events(self, key: str, events: list[Event]) -> None:
        if events:
            p, told = prefix(key), (e.dumps() for e in events)
            await self._one(*_ev(lua.ADD_EVENTS, (p + b"meta", p + b"events"), EVENTS_KEPT, *told))

    async def events(self, key: str) -> list[Event]:
        found = await self._one("LRANGE", prefix(key) + b"events", 0, -1, read=True)
        return [Event.loads(raw) for raw in found]

    async def charge(self, key: str, charge_id: str) -> Charge | None:
        raw = await self._one("GET", prefix(key) + b"c:" + _b(charge_id), read=True)
        return lua.charge_of(raw) if raw is not None else None

    async def page(self, key: str, status: str | None, limit: int, offset: int) -> tuple[list[Charge], int]:
        p = prefix(key)
        rows = p + b"all" if status is None else p + b"s:" + _b(status)
        total, *found = await self._one(*_ev(lua.PAGE, (rows,), limit, max(offset, 0), p), read=True)
        return [lua.charge_of(raw) for raw in found if raw is not None], int(total)

    async def refunds(self, key: str, charge_id: str) -> list[Refund]:
        found = await self._one("LRANGE", prefix(key) + b"r:" + _b(charge_id), 0, -1, read=True)
        return [lua.refund_of(raw) for raw in found]

    async def add_charge(
        self, key: str, charge: Charge, idempotency_key: str | None, reply: Reply | None, events: list[Event]
    ) -> None:
        p = prefix(key)
        charge.seq = self._now()  # see the module docstring
        status, settles = _b(charge.status), charge.settle_at is not None
        keys = (p + b"meta", p + b"all", p + b"s:" + status, p + b"settle", p + b"later", p + b"c:" + _b(charge.id))
        keys_and_events = (*keys, p + b"keys", p + b"korder", p + b"events")
        settle_at, settled = (float(charge.settle_at or 0), lua.settlement(charge)) if settles else (b"", b"")
        stored = (lua.row(charge), int(charge.created), status, lua.charge_value(charge), settle_at, settled)
        finish = _finish(idempotency_key, reply)
        told = (EVENTS_KEPT, *(e.dumps() for e in events))  # in the same script: one call less a POST
        await self._creating(key, _ev(lua.ADD_CHARGE, keys_and_events, *stored, *finish, _b(charge.id), *told))

    async def refund(
        self,
        key: str,
        charge_id: str,
        decide: Callable[[Charge | None], tuple[Refund | None, T]],
        idempotency_key: str | None,
        reply_of: Callable[[T], Reply | None],
    ) -> T:
        p, cid = prefix(key), _b(charge_id)
        keys = (p + b"c:" + cid, p + b"r:" + cid, p + b"meta", p + b"later", p + b"keys", p + b"korder")
        for _ in range(_REFUND_ATTEMPTS):
            raw = await self._one("GET", keys[0], read=True)
            charge = lua.charge_of(raw) if raw is not None else None
            refund, verdict = decide(charge)  # may raise an ApiError: then nothing is stored
            changed = stored = settled = b""
            if refund is not None and charge is not None:
                charge.amount_refunded += refund.amount
                changed, stored = lua.charge_value(charge), lua.refund_value(refund)
                settled = lua.settlement(charge) if charge.settle_at is not None else b""
            finish = _finish(idempotency_key, reply_of(verdict)) if idempotency_key is not None else _finish(None, None)
            cas = _ev(lua.REFUND, keys, raw or b"", changed, stored, cid, settled, *finish)
            if await self._one(*cas):
                return verdict
            # Another process changed the charge since we read it: read it again and decide again.
        raise StoreUnavailable(f"charge {charge_id[:100]} kept changing under {_REFUND_ATTEMPTS} refund attempts")

    async def add_seeded(self, key: str, made: list[tuple[Charge, Refund | None]]) -> list[Charge]:
        p = prefix(key)
        await self._creating(key)
        charges = [charge for charge, _ in made]
        for charge in charges:
            charge.seq = self._now()
        # One transaction (MULTI/EXEC, one round trip), in batches so that no command grows huge.
        meta = p + b"meta"
        commands: list[tuple[Any, ...]] = [("MULTI",), ("HSETNX", meta, b"t", b"1")]
        for start in range(0, len(charges), 500):
            batch = charges[start : start + 500]
            commands.append(("MSET", *(a for c in batch for a in (p + b"c:" + _b(c.id), lua.charge_value(c)))))
            commands.append(("ZADD", p + b"all", *(a for c in batch for a in (int(c.created), lua.row(c)))))
            for status in {c.status for c in batch}:
                rows = (a for c in batch if c.status == status for a in (int(c.created), lua.row(c)))
                commands.append(("ZADD", p + b"s:" + _b(status), *rows))
            settling = [c for c in batch if c.settle_at is not None]
            if settling:
                commands.append(
                    ("ZADD", p + b"settle", *(a for c in settling for a in (float(c.settle_at or 0), lua.row(c))))
                )
                commands.append(("HSET", p + b"later", *(a for c in settling for a in (_b(c.id), lua.settlement(c)))))
        refunds = [refund for _, refund in made if refund is not None]
        for refund in refunds:
            commands.append(("RPUSH", p + b"r:" + _b(refund.charge_id), lua.refund_value(refund)))
        commands.append(("HINCRBY", meta, b"n", len(charges)))
        commands.append(("HINCRBY", meta, b"refunds", len(refunds)))
        for status in STATUSES:
            commands.append(("HINCRBY", meta, _b(status), sum(1 for c in charges if c.status == status)))
        commands.append(("EXEC",))
        (*_, done) = await self._run(commands)
        errors = [reply for reply in done or () if isinstance(reply, ReplyError)]
        if done is None or errors:  # never expected: the commands are well formed
            raise ReplyError(f"storing seeded charges: {errors[0] if errors else 'the transaction was aborted'}")
        return charges

    # -- idempotency keys and fail-first marks --------------------------------------------------
    async def saved(self, key: str, idempotency_key: str, now: float, ttl: float) -> Saved | None:
        raw = await self._one("HGET", prefix(key) + b"keys", _b(idempotency_key), read=True)
        if raw is None:
            return None
        found = lua.saved_of(raw)
        # A finished key expires `ttl` after it was made; it stays held (bounded by `limit`) until
        # a claim takes it over or newer keys push it out.
        return None if found.reply is not None and now - found.created >= ttl else found

    async def claim(self, key: str, idempotency_key: str, saved: Saved, limit: int, ttl: float) -> Saved | None:
        p = prefix(key)
        held = (_b(idempotency_key), lua.saved_value(saved), float(saved.created), float(ttl), limit)
        (found,) = await self._creating(key, _ev(lua.CLAIM, (p + b"meta", p + b"keys", p + b"korder"), *held))
        return lua.saved_of(found) if found is not None else None

    async def save_reply(self, key: str, idempotency_key: str, reply: Reply | None) -> None:
        p = prefix(key)
        await self._run([_ev(lua.SAVE_REPLY, (p + b"keys", p + b"korder"), *_finish(idempotency_key, reply))])

    async def mark(self, key: str, marker: str, limit: int) -> bool:
        p = prefix(key)
        (new,) = await self._creating(key, _ev(lua.MARK, (p + b"meta", p + b"marks"), _b(marker), limit))
        return bool(new)

    async def unmark(self, key: str, marker: str) -> None:
        await self._run([("ZREM", prefix(key) + b"marks", _b(marker))])

    # -- webhooks ----------------------------------------------------------------------------
    async def add_hook(self, key: str, hook_id: str, raw: bytes, limit: int) -> bool:
        p = prefix(key)
        (added,) = await self._creating(key, _ev(lua.ADD_HOOK, (p + b"meta", p + b"hooks"), _b(hook_id), raw, limit))
        return bool(added)

    async def hooks(self, key: str) -> list[bytes]:
        found = await self._one("HVALS", prefix(key) + b"hooks", read=True)
        return [lua.sequenced(value) for value in sorted(found)]

    async def remove_hook(self, key: str, hook_id: str) -> bool:
        p, hook = prefix(key), _b(hook_id)
        keys = (p + b"meta", p + b"hooks", p + b"atts", p + b"att:" + hook)
        return bool(await self._one(*_ev(lua.REMOVE_HOOK, keys, hook)))

    async def queue(self, key: str, jobs: list[tuple[str, float, bytes]], limit: int) -> int:
        if not jobs:
            return 0
        # A job's id is not kept: jobs are only ever taken by due time, and in the order queued.
        queued = [arg for _, due, raw in jobs for arg in (float(due), raw)]
        return int(await self._one(*_ev(lua.QUEUE, (LRU, QDUE, Q + _b(key), STATS), _b(key), limit, *queued)))

    async def take(self, now: float, limit: int) -> list[tuple[str, bytes]]:
        if limit <= 0:
            return []
        found = await self._one(*_ev(lua.TAKE, (QDUE,), float(now), limit, Q))
        return [
            (tenant.decode("utf-8", "surrogatepass"), lua.sequenced(job))
            for tenant, job in zip(found[::2], found[1::2], strict=True)
        ]

    async def log_attempt(self, key: str, hook_id: str, raw: bytes) -> None:
        p, hook = prefix(key), _b(hook_id)
        keys = (p + b"meta", p + b"atts", p + b"att:" + hook)
        await self._run([_ev(lua.LOG_ATTEMPT, keys, hook, raw, ATTEMPTS_KEPT)])

    async def attempts(self, key: str, hook_id: str) -> list[bytes]:
        return list(await self._one("LRANGE", prefix(key) + b"att:" + _b(hook_id), 0, -1, read=True))

    # -- the request journal ----------------------------------------------------------------------
    async def record(self, entry: Entry) -> None:
        mine = entry.tenant is not None
        name = _b(entry.tenant or "")
        owner = f"{float(entry.started)!r} ".encode() + (b"t" + name if mine else b"n")
        value = lua.entry_value(entry)
        size = self.settings.journal_size
        keys = (JOURNAL, JBODY, JOF, JTENANTS, JT + name)
        await self._run([_ev(lua.RECORD, keys, _b(entry.id), value, owner, name, size, JT, b"1" if mine else b"0")])

    async def entries(self, tenant: str | None, limit: int | None = None) -> list[Entry]:
        if limit is not None and limit <= 0:
            return []
        listed = JOURNAL if tenant is None else JT + _b(tenant)
        found = await self._one(*_ev(lua.ENTRIES, (listed, JBODY), -1 if limit is None else limit - 1), read=True)
        return [lua.entry_of(raw) for raw in found if raw is not None]

    async def entries_after(self, cursor: str) -> list[Entry] | None:
        found = await self._one(*_ev(lua.ENTRIES_AFTER, (JOURNAL, JBODY), _b(cursor)), read=True)
        return None if found is None else [lua.entry_of(raw) for raw in found if raw is not None]

    async def journal_stats(self, tenant: str | None) -> tuple[int, float | None, str]:
        listed = JOURNAL if tenant is None else JT + _b(tenant)
        count, started, newest = await self._one(*_ev(lua.JOURNAL_STATS, (JOURNAL, JOF, listed)), read=True)
        return int(count), _float(started), newest.decode() if newest is not None else ""

    async def forget(self, tenant: str | None) -> None:
        keys = (JOURNAL, JBODY, JOF, JTENANTS, JT + _b(tenant or ""))
        await self._run([_ev(lua.FORGET, keys, _b(tenant or ""), JT, b"0" if tenant is None else b"1")])

"""The SQLite store: state in one file, durable on one host and shared by the processes there.

`--store sqlite:///relative/path.db` or `sqlite:////absolute/path.db`. The file is in WAL mode with
`synchronous=NORMAL`: a transaction is on disk (in the write-ahead log) when it commits, so
`kill -9` loses no write that was answered 2xx; several processes share it, readers never wait for
the writer, and each write takes the file's write lock with `BEGIN IMMEDIATE` (waiting up to 5 s
for another process's transaction). Every rule that reads and then writes (a refund within what
remains, a key claimed if free, a mark set once, the clock within its limit) does both inside one
such transaction.

Lists are newest first at a cost that does not grow with the offset: each charge carries its
position in its tenant's list (`rank`) and in its status's list (`srank`), so a page is a range of
an index. A charge made through the API is the newest and is numbered as it is stored; a
back-dated one (a seed) or a settlement marks the tenant's positions stale (`dirty`), and the next
page renumbers them once, with window functions.

Committed writes are copied from the write-ahead log into the database file (a checkpoint) by a
thread of the process (`Checkpoints`), a moment after they commit: the copy and its two `fsync`s
run while the event loop goes on answering, and a page written by many commits in that moment is
copied once. The writing connection checkpoints for itself only when the log reaches
_BACKSTOP_PAGES (16 MB): it then copies what the thread has not, and the log starts over.

Webhook jobs of every tenant wait in one table indexed by due time: `take` deletes the earliest due
ones and answers what it deleted (`DELETE ... RETURNING`) in one write transaction, so of several
processes taking at once each job goes to one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sandbox.errors import ConfigError
from sandbox.models import Charge, Entry, Event, Refund, Reply, Saved, Summary, json_bytes
from sandbox.settings import Settings
from sandbox.stores.base import ATTEMPTS_KEPT, EVENTS_KEPT, MAX_UPLOADED_RULES, Store, StoreUnavailable
from sandbox.stores.sqlite_rows import (
    CHARGE,
    JOURNAL,
    SCHEMA,
    SCHEMA_VERSION,
    SUMMARY,
    TENANT,
    Meta,
    charge_of,
    path_of,
    summary_of,
)

T = TypeVar("T")
_log = logging.getLogger("sandbox")
_TRIM_EVERY = 64  # journal rows (or a tenant's events) inserted between trims (reads look only at the newest)
_COUNTED_TENANTS = 10_000  # tenants whose event inserts this process counts at once
_BACKSTOP_PAGES = 4000  # log pages at which the writing connection checkpoints itself (SQLite's default: 1000)
_CHECKPOINT_PAUSE = 0.1  # seconds between a commit and the thread's checkpoint: the commits meanwhile share it


class SQLiteStore(Store):
    kind = "sqlite"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.path = path_of(settings.store)
        try:
            # Autocommit (isolation_level=None): transactions are begun explicitly, IMMEDIATE.
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=5, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_PAGES}")
            self._create_schema()
        except sqlite3.Error as exc:
            raise ConfigError(
                f"--store {settings.store}: cannot use {self.path} as a SQLite database ({exc}); "
                "give a writable file in an existing folder (sqlite:////absolute/path.db)."
            ) from exc
        self._last_note, self._noted = -60.0, 0
        self._touched = ("", 0.0)  # the tenant this process last marked as used, and when
        self._inserted = 0
        self._event_inserts: dict[str, int] = {}  # events this process inserted per tenant since its last trim
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._checkpoints = Checkpoints(self.path)

    def _create_schema(self) -> None:
        with self._write() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            found = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if found is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif found[0] in ("1", "2", "3"):  # older files: SCHEMA above has just made the newer tables
                if found[0] == "1":  # version 1 (0.x) kept no fault or findings with a journal entry
                    db.execute("ALTER TABLE journal ADD COLUMN notes TEXT")
                # Versions 1-3 counted no webhook endpoints. (Asked, not assumed from the version: a
                # file that says 1-3 may have been made with this column, as the upgrade tests make theirs.)
                if "hooks" not in {row[1] for row in db.execute("PRAGMA table_info(tenants)")}:
                    db.execute("ALTER TABLE tenants ADD COLUMN hooks INTEGER NOT NULL DEFAULT 0")
                db.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (SCHEMA_VERSION,))
            elif found[0] != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"it holds schema version {found[0]}, this sandbox writes {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding the file's write lock: everything in it is seen together or not at all."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite: {exc}") from exc
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.db.execute("ROLLBACK")
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    def _submit(self, work: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `work` in the next group commit; its result once that is on disk.

        A commit costs a write to the log whatever it holds, so every write submitted in one turn
        of the event loop (under load, the requests of many connections) shares one transaction,
        and no answer goes out before its write is committed. A write that raises (a refused
        refund) is undone alone: the batch is run again with each write in a savepoint of its own.
        Writes are therefore written to be run twice (they read what they need inside the batch)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((work, future))
        if len(self._pending) == 1:
            loop.call_soon(self._commit)
        return future

    def _commit(self) -> None:
        batch, self._pending = self._pending, []
        done: list[tuple[asyncio.Future[Any], Any, BaseException | None]]
        try:
            try:
                done = self._run(batch, savepoints=False)  # the usual case: nothing is refused
            except _Refused:
                done = self._run(batch, savepoints=True)
        except StoreUnavailable as exc:
            done = [(future, None, exc) for _, future in batch]
        except sqlite3.Error as exc:
            done = [(future, None, StoreUnavailable(f"SQLite: {exc}")) for _, future in batch]
        self._checkpoints.nudge()
        for future, result, error in done:
            if future.cancelled():
                continue  # the request is gone (its client left); what it wrote stays written
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def _run(
        self, batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]], *, savepoints: bool
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """The batch in one transaction. Without savepoints, a write that raises undoes the whole
        transaction (_Refused); with them, only itself, and its caller gets the error."""
        done: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        with self._write() as db:
            for work, future in batch:
                if not savepoints:
                    try:
                        done.append((future, work(db), None))
                    except Exception as exc:
                        raise _Refused from exc
                    continue
                db.execute("SAVEPOINT op")
                try:
                    done.append((future, work(db), None))
                except Exception as exc:
                    db.execute("ROLLBACK TO op")
                    done.append((future, None, exc))
                db.execute("RELEASE op")
        return done

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    async def close(self) -> None:
        self._checkpoints.stop()
        self.db.close()

    async def check(self) -> None:
        self._read("SELECT 1 FROM meta LIMIT 1")

    # -- tenants ----------------------------------------------------------------------------
    async def tenant(self, key: str, *, create: bool = False) -> Meta | None:
        if create:
            return await self._submit(lambda db: self._ensure(db, key))
        rows = self._read(f"SELECT {TENANT} FROM tenants WHERE key = ?", (key,))
        if not rows:
            return None
        self._touch(key)
        return Meta(*rows[0])

    def _touch(self, key: str) -> None:
        """Mark a read tenant as the most recently used. A process reading the same tenant over and
        over (a benchmark, a polling client) writes this at most twice a second."""
        now = time.time()
        if not self._due_touch(key, now):
            return
        with contextlib.suppress(sqlite3.OperationalError):  # busy: recency is a hint; the read succeeded
            self.db.execute("UPDATE tenants SET used = ? WHERE key = ?", (now, key))

    def _due_touch(self, key: str, now: float) -> bool:
        """Whether `key`'s `used` should be written now (then noted as written): at most twice a
        second for the tenant this process used last, since `used` is indexed."""
        if self._touched[0] == key and now - self._touched[1] < 0.5:
            return False
        self._touched = (key, now)
        return True

    def _ensure(self, db: sqlite3.Connection, key: str) -> Meta:
        """The tenant, created if need be (dropping the least recently used over the cap); in a transaction."""
        now = time.time()
        self._touched = (key, now)
        found = db.execute(f"SELECT {TENANT} FROM tenants WHERE key = ?", (key,)).fetchone()
        if found is not None:
            db.execute("UPDATE tenants SET used = ? WHERE key = ?", (now, key))
            return Meta(*found)
        db.execute("INSERT INTO tenants (key, used) VALUES (?, ?)", (key, now))
        (count,) = db.execute("SELECT COUNT(*) FROM tenants").fetchone()
        for (oldest,) in db.execute(
            "SELECT key FROM tenants WHERE key != ? ORDER BY used LIMIT ?", (key, max(count - self.max_tenants, 0))
        ).fetchall():
            self._drop(db, oldest, f"--max-tenants {self.max_tenants}")
        return Meta(key, 0.0, None, None, 0)

    def _drop(self, db: sqlite3.Connection, key: str, limit: str) -> None:
        self._delete(db, key)
        now = time.time()
        db.execute("INSERT INTO meta VALUES ('dropped', '1') ON CONFLICT DO UPDATE SET value = value + 1")
        db.execute(
            "INSERT INTO meta VALUES ('last_dropped', ?) ON CONFLICT DO UPDATE SET value = excluded.value",
            (json.dumps([key, now, limit]),),
        )
        if now - self._last_note >= 60:  # at most a line a minute per process, as memory.py
            self._last_note = now
            _log.warning("dropped tenant %s, the least recently used, to stay within %s", key, limit)

    @staticmethod
    def _delete(db: sqlite3.Connection, key: str) -> None:
        for table in ("charges", "refunds", "keys", "marks", "rules", "events", "hooks", "jobs", "attempts"):
            db.execute(f"DELETE FROM {table} WHERE tenant = ?", (key,))  # the names come from a fixed list
        db.execute("DELETE FROM tenants WHERE key = ?", (key,))

    async def advance_clock(self, key: str, seconds: float, real_now: float, last: float) -> Meta | None:
        def work(db: sqlite3.Connection) -> Meta | None:
            meta = self._ensure(db, key)
            if real_now + meta.clock_offset + seconds > last:
                return None
            db.execute("UPDATE tenants SET clock_offset = clock_offset + ? WHERE key = ?", (seconds, key))
            if seconds:  # queued jobs follow the tenant's clock: due sooner by as much
                db.execute("UPDATE jobs SET due = due - ? WHERE tenant = ?", (seconds, key))
            return Meta(key, meta.clock_offset + seconds, meta.rules_version, meta.next_settle, meta.hooks)

        return await self._submit(work)

    async def rules(self, key: str) -> tuple[str, str] | None:
        rows = self._read("SELECT version, document FROM rules WHERE tenant = ?", (key,))
        return (rows[0][0], rows[0][1]) if rows else None

    async def set_rules(self, key: str, document: str, uploaded: int, version: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            self._ensure(db, key)
            db.execute(
                "INSERT INTO rules VALUES (?1, ?2, ?3) ON CONFLICT DO UPDATE SET version = ?2, document = ?3",
                (key, version, document),
            )
            db.execute("UPDATE tenants SET rules_version = ?, uploaded = ? WHERE key = ?", (version, uploaded, key))
            (total,) = db.execute("SELECT COALESCE(SUM(uploaded), 0) FROM tenants").fetchone()
            holders = db.execute(
                "SELECT key, uploaded FROM tenants WHERE uploaded > 0 AND key != ? ORDER BY used", (key,)
            )
            for other, held in holders.fetchall():
                if total <= MAX_UPLOADED_RULES:
                    break
                self._drop(db, other, f"{MAX_UPLOADED_RULES} uploaded scenario rules in all")
                total -= held

        return await self._submit(work)

    async def reset(self, key: str | None) -> None:
        def work(db: sqlite3.Connection) -> None:
            if key is None:
                tables = ("tenants", "charges", "refunds", "keys", "marks", "rules", "events", "journal")
                for table in (*tables, "hooks", "jobs", "attempts"):
                    db.execute(f"DELETE FROM {table}")  # the names come from a fixed list
                db.execute("DELETE FROM meta WHERE name IN ('dropped', 'last_dropped')")
            else:
                self._delete(db, key)
                db.execute("DELETE FROM journal WHERE tenant = ?", (key,))

        return await self._submit(work)

    async def summary(self, key: str) -> Summary | None:
        rows = self._read(f"SELECT {SUMMARY} FROM tenants WHERE key = ?", (key,))
        return summary_of(rows[0]) if rows else None

    async def summaries(self, offset: int, limit: int) -> tuple[list[Summary], int]:
        (total,) = self._read("SELECT COUNT(*) FROM tenants")[0]
        if limit <= 0:
            return [], total
        rows = self._read(f"SELECT {SUMMARY} FROM tenants ORDER BY used DESC LIMIT ? OFFSET ?", (limit, offset))
        return [summary_of(row) for row in rows], total

    async def drops(self) -> tuple[int, tuple[str, float, str] | None]:
        found = dict(self._read("SELECT name, value FROM meta WHERE name IN ('dropped', 'last_dropped')"))
        last = json.loads(found["last_dropped"]) if "last_dropped" in found else None
        return int(found.get("dropped", 0)), (last[0], last[1], last[2]) if last else None

    # -- charges and refunds ------------------------------------------------------------------
    async def settle_due(self, key: str, now: float) -> list[Charge]:
        def work(db: sqlite3.Connection) -> list[Charge]:
            due = db.execute(
                "SELECT seq, settle_to, settle_code FROM charges "
                "WHERE tenant = ? AND settle_at IS NOT NULL AND settle_at <= ? AND status = 'pending'",
                (key, now),
            ).fetchall()
            if not due:
                return []
            moved = {"succeeded": 0, "failed": 0}
            for seq, to, code in due:
                to = to or "succeeded"
                failure = (code or "generic_decline") if to == "failed" else None
                db.execute(
                    "UPDATE charges SET status = ?, failure_code = COALESCE(?, failure_code), "
                    "settled_at = settle_at, settle_at = NULL WHERE seq = ?",
                    (to, failure, seq),
                )
                moved[to] += 1
            db.execute(
                "UPDATE tenants SET pending = pending - :due, succeeded = succeeded + :ok, failed = failed + :failed, "
                "dirty = 1, next_settle = (SELECT MIN(settle_at) FROM charges WHERE tenant = :key AND settle_at "
                "IS NOT NULL) WHERE key = :key",
                {"due": len(due), "ok": moved["succeeded"], "failed": moved["failed"], "key": key},
            )
            # As they are now, read inside this transaction (another process settling at once got none
            # of them), in the order they fell due, as the other engines settle them.
            seqs = json.dumps([seq for seq, _, _ in due])
            rows = db.execute(
                f"SELECT {CHARGE} FROM charges WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY settled_at, seq",
                (seqs,),
            )
            return [charge_of(row) for row in rows.fetchall()]

        return await self._submit(work)

    async def add_events(self, key: str, events: list[Event]) -> None:
        if not events:
            return

        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM tenants WHERE key = ?", (key,)).fetchone() is None:
                return  # events come of stored charges and refunds: a tenant without data keeps none
            self._add_events(db, key, events)

        await self._submit(work)

    def _add_events(self, db: sqlite3.Connection, key: str, events: list[Event]) -> None:
        if len(events) == 1:  # the usual case; executemany costs more for one row
            db.execute("INSERT INTO events (tenant, raw) VALUES (?, ?)", (key, events[0].dumps()))
        else:
            db.executemany("INSERT INTO events (tenant, raw) VALUES (?, ?)", [(key, e.dumps()) for e in events])
        # Finding the tenant's oldest row to keep walks EVENTS_KEPT index entries, too dear for every
        # charge: this process trims a tenant every _TRIM_EVERY of its inserts, and reads look only at
        # the newest EVENTS_KEPT (so a tenant holds at most _TRIM_EVERY more per process, unseen).
        added = self._event_inserts.get(key, 0) + len(events)
        if added < _TRIM_EVERY:
            self._event_inserts[key] = added
            return
        self._event_inserts.pop(key, None)
        if len(self._event_inserts) > _COUNTED_TENANTS:
            self._event_inserts.clear()  # the counts only space out trims: losing them costs an early trim
        db.execute(
            "DELETE FROM events WHERE tenant = ?1 AND n <= "
            "(SELECT n FROM events WHERE tenant = ?1 ORDER BY n DESC LIMIT 1 OFFSET ?2)",
            (key, EVENTS_KEPT),
        )  # n counts every tenant's events: the tenant's own newest EVENTS_KEPT stay

    async def events(self, key: str) -> list[Event]:
        rows = self._read(
            "SELECT raw FROM (SELECT n, raw FROM events WHERE tenant = ? ORDER BY n DESC LIMIT ?) ORDER BY n",
            (key, EVENTS_KEPT),
        )
        return [Event.loads(raw) for (raw,) in rows]

    async def charge(self, key: str, charge_id: str) -> Charge | None:
        rows = self._read(f"SELECT {CHARGE} FROM charges WHERE tenant = ? AND id = ?", (key, charge_id))
        return charge_of(rows[0]) if rows else None

    async def page(self, key: str, status: str | None, limit: int, offset: int) -> tuple[list[Charge], int]:
        rows = self._read("SELECT charges, succeeded, pending, failed, dirty FROM tenants WHERE key = ?", (key,))
        if not rows:
            return [], 0
        charges, succeeded, pending, failed, dirty = rows[0]
        if dirty:
            self._renumber(key)
        total = {"succeeded": succeeded, "pending": pending, "failed": failed}.get(status or "", charges)
        high, low = total - offset - 1, max(total - offset - limit, 0)
        if high < 0:
            return [], total
        if status is None:
            sql = f"SELECT {CHARGE} FROM charges WHERE tenant = ? AND rank BETWEEN ? AND ? ORDER BY rank DESC"
            found = self._read(sql, (key, low, high))
        else:
            sql = f"SELECT {CHARGE} FROM charges WHERE tenant = ? AND status = ? AND srank BETWEEN ? AND ? "
            found = self._read(sql + "ORDER BY srank DESC", (key, status, low, high))
        return [charge_of(row) for row in found], total

    def _renumber(self, key: str) -> None:
        """Positions again, in every list of the tenant: after a seed or a settlement."""
        with self._write() as db:
            db.execute(
                "UPDATE charges SET rank = r.n, srank = r.s FROM (SELECT seq, "
                "ROW_NUMBER() OVER (ORDER BY second, seq) - 1 AS n, "
                "ROW_NUMBER() OVER (PARTITION BY status ORDER BY second, seq) - 1 AS s "
                "FROM charges WHERE tenant = ?) AS r WHERE charges.seq = r.seq",
                (key,),
            )
            db.execute("UPDATE tenants SET dirty = 0 WHERE key = ?", (key,))

    async def refunds(self, key: str, charge_id: str) -> list[Refund]:
        rows = self._read(
            "SELECT id, charge_id, amount, reason, metadata, created, status, scenario FROM refunds "
            "WHERE tenant = ? AND charge_id = ? ORDER BY n",
            (key, charge_id),
        )
        return [Refund(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows]

    def _insert(self, db: sqlite3.Connection, key: str, charge: Charge) -> bool:
        """Store a charge of an existing tenant, numbered and placed; False when the tenant is gone.
        One UPDATE counts it and says where it goes (SQLite evaluates every SET expression on the
        row as it was, so `dirty` compares with the old `last_second`)."""
        second, status = int(charge.created), charge.status
        # `used` (indexed, for dropping the least recently used) is set as `_touch` sets it: at most
        # twice a second for a tenant charging over and over.
        now = time.time()
        used = "used = ?1, " if self._due_touch(key, now) else ""
        placed = db.execute(
            f"UPDATE tenants SET {used}charges = charges + 1, {status} = {status} + 1, "
            "last_second = MAX(last_second, ?2), dirty = dirty OR (?2 < last_second), "
            "next_settle = CASE WHEN ?3 IS NULL THEN next_settle ELSE MIN(COALESCE(next_settle, ?3), ?3) END "
            f"WHERE key = ?4 RETURNING charges - 1, {status} - 1",
            (now, second, charge.settle_at, key),
        ).fetchone()  # the status is one of three names
        if placed is None:
            return False
        metadata = json_bytes(charge.metadata).decode()
        cursor = db.execute(
            "INSERT INTO charges (tenant, id, amount, currency, description, metadata, status, created, second, "
            "amount_refunded, failure_code, scenario, settle_at, settled_at, settle_to, settle_code, rank, srank) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key, charge.id, charge.amount, charge.currency, charge.description, metadata,
                status, charge.created, second, charge.amount_refunded, charge.failure_code, charge.scenario,
                charge.settle_at, charge.settled_at, charge.settle_to, charge.settle_code, placed[0], placed[1],
            ),
        )  # fmt: skip
        charge.seq = int(cursor.lastrowid or 0)
        return True

    async def add_charge(
        self, key: str, charge: Charge, idempotency_key: str | None, reply: Reply | None, events: list[Event]
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            if not self._insert(db, key, charge):  # a new tenant (or one just dropped): make it first
                self._ensure(db, key)
                self._insert(db, key, charge)
            if idempotency_key is not None:
                self._save_reply(db, key, idempotency_key, reply)
            if events:
                self._add_events(db, key, events)

        return await self._submit(work)

    async def refund(
        self,
        key: str,
        charge_id: str,
        decide: Callable[[Charge | None], tuple[Refund | None, T]],
        idempotency_key: str | None,
        reply_of: Callable[[T], Reply | None],
    ) -> T:
        def work(db: sqlite3.Connection) -> T:
            row = db.execute(f"SELECT {CHARGE} FROM charges WHERE tenant = ? AND id = ?", (key, charge_id)).fetchone()
            refund, verdict = decide(charge_of(row) if row is not None else None)
            if refund is not None and row is not None:
                db.execute(
                    "UPDATE charges SET amount_refunded = amount_refunded + ? WHERE seq = ?", (refund.amount, row[1])
                )
                self._add_refund(db, key, refund)
            if idempotency_key is not None:
                self._save_reply(db, key, idempotency_key, reply_of(verdict))
            return verdict

        return await self._submit(work)

    @staticmethod
    def _add_refund(db: sqlite3.Connection, key: str, r: Refund) -> None:
        metadata = json_bytes(r.metadata).decode()
        db.execute(
            "INSERT INTO refunds (tenant, id, charge_id, amount, reason, metadata, created, status, scenario) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, r.id, r.charge_id, r.amount, r.reason, metadata, r.created, r.status, r.scenario),
        )
        db.execute("UPDATE tenants SET refunds = refunds + 1 WHERE key = ?", (key,))

    async def add_seeded(self, key: str, made: list[tuple[Charge, Refund | None]]) -> list[Charge]:
        def work(db: sqlite3.Connection) -> None:
            self._ensure(db, key)
            for charge, refund in made:
                self._insert(db, key, charge)  # the tenant exists: made just above
                if refund is not None:
                    self._add_refund(db, key, refund)
            db.execute("UPDATE tenants SET dirty = 1 WHERE key = ?", (key,))  # dates are spread: renumber once

        await self._submit(work)
        return [charge for charge, _ in made]

    # -- idempotency keys and fail-first marks --------------------------------------------------
    async def saved(self, key: str, idempotency_key: str, now: float, ttl: float) -> Saved | None:
        rows = self._read(
            "SELECT fingerprint, created, reply FROM keys WHERE tenant = ? AND key = ?", (key, idempotency_key)
        )
        if not rows:
            return None
        fingerprint, created, reply = rows[0]
        if reply is not None and now - created >= ttl:
            return None  # expired; `claim` replaces it
        return Saved(fingerprint, created, Reply.loads(reply) if reply is not None else None)

    async def claim(self, key: str, idempotency_key: str, saved: Saved, limit: int, ttl: float) -> Saved | None:
        def work(db: sqlite3.Connection) -> Saved | None:
            self._ensure(db, key)
            found = db.execute(
                "SELECT n, fingerprint, created, reply FROM keys WHERE tenant = ? AND key = ?", (key, idempotency_key)
            ).fetchone()
            if found is not None:
                n, fingerprint, created, reply = found
                if reply is None or saved.created - created < ttl:
                    return Saved(fingerprint, created, Reply.loads(reply) if reply is not None else None)
                db.execute("DELETE FROM keys WHERE n = ?", (n,))
                db.execute("UPDATE tenants SET keys = keys - 1 WHERE key = ?", (key,))
            db.execute(
                "INSERT INTO keys (tenant, key, fingerprint, created) VALUES (?, ?, ?, ?)",
                (key, idempotency_key, saved.fingerprint, saved.created),
            )
            self._bound(db, key, "keys", limit)
            return None

        return await self._submit(work)

    @staticmethod
    def _bound(db: sqlite3.Connection, key: str, table: str, limit: int) -> None:
        """Count a new row of `table` (keys or marks) and drop the tenant's oldest over `limit`."""
        (count,) = db.execute(
            f"UPDATE tenants SET {table} = {table} + 1 WHERE key = ? RETURNING {table}", (key,)
        ).fetchone()
        if count > limit:
            db.execute(
                f"DELETE FROM {table} WHERE n IN (SELECT n FROM {table} WHERE tenant = ? ORDER BY n LIMIT ?)",
                (key, count - limit),
            )  # the table is keys or marks
            db.execute(f"UPDATE tenants SET {table} = ? WHERE key = ?", (limit, key))

    async def save_reply(self, key: str, idempotency_key: str, reply: Reply | None) -> None:
        def work(db: sqlite3.Connection) -> None:
            self._save_reply(db, key, idempotency_key, reply)

        return await self._submit(work)

    @staticmethod
    def _save_reply(db: sqlite3.Connection, key: str, idempotency_key: str, reply: Reply | None) -> None:
        if reply is not None:
            db.execute("UPDATE keys SET reply = ? WHERE tenant = ? AND key = ?", (reply.dumps(), key, idempotency_key))
        elif db.execute("DELETE FROM keys WHERE tenant = ? AND key = ?", (key, idempotency_key)).rowcount:
            db.execute("UPDATE tenants SET keys = keys - 1 WHERE key = ?", (key,))

    async def mark(self, key: str, marker: str, limit: int) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            self._ensure(db, key)
            if not db.execute("INSERT OR IGNORE INTO marks (tenant, marker) VALUES (?, ?)", (key, marker)).rowcount:
                return False
            self._bound(db, key, "marks", limit)
            return True

        return await self._submit(work)

    async def unmark(self, key: str, marker: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("DELETE FROM marks WHERE tenant = ? AND marker = ?", (key, marker)).rowcount:
                db.execute("UPDATE tenants SET marks = marks - 1 WHERE key = ?", (key,))

        return await self._submit(work)

    # -- webhooks ----------------------------------------------------------------------------
    async def add_hook(self, key: str, hook_id: str, raw: bytes, limit: int) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            if self._ensure(db, key).hooks >= limit:
                return False
            if not db.execute("UPDATE hooks SET raw = ? WHERE tenant = ? AND id = ?", (raw, key, hook_id)).rowcount:
                db.execute("INSERT INTO hooks (tenant, id, raw) VALUES (?, ?, ?)", (key, hook_id, raw))
                db.execute("UPDATE tenants SET hooks = hooks + 1 WHERE key = ?", (key,))
            return True

        return await self._submit(work)

    async def hooks(self, key: str) -> list[bytes]:
        rows = self._read("SELECT raw FROM hooks WHERE tenant = ? ORDER BY n", (key,))
        return [bytes(raw) for (raw,) in rows]

    async def remove_hook(self, key: str, hook_id: str) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            if not db.execute("DELETE FROM hooks WHERE tenant = ? AND id = ?", (key, hook_id)).rowcount:
                return False
            db.execute("UPDATE tenants SET hooks = hooks - 1 WHERE key = ?", (key,))
            db.execute("DELETE FROM attempts WHERE tenant = ? AND hook = ?", (key, hook_id))
            return True

        return await self._submit(work)

    async def queue(self, key: str, jobs: list[tuple[str, float, bytes]], limit: int) -> int:
        if not jobs:
            return 0

        def work(db: sqlite3.Connection) -> int:
            if db.execute("SELECT 1 FROM tenants WHERE key = ?", (key,)).fetchone() is None:
                return 0  # no tenant, no jobs: a queue creates none
            (waiting,) = db.execute("SELECT COUNT(*) FROM jobs WHERE tenant = ?", (key,)).fetchone()
            room = jobs[: max(0, limit - waiting)]
            # A job's id is not kept: jobs are only ever taken by due time, and in the order queued.
            db.executemany("INSERT INTO jobs (tenant, due, raw) VALUES (?, ?, ?)", [(key, d, r) for _, d, r in room])
            return len(room)

        return await self._submit(work)

    async def take(self, now: float, limit: int) -> list[tuple[str, bytes]]:
        # Asked first with a read (readers never wait): workers poll, and a poll that finds nothing due
        # should not queue for the file's write lock. A job due meanwhile waits for the next poll.
        if limit <= 0 or not self._read("SELECT 1 FROM jobs WHERE due <= ? LIMIT 1", (now,)):
            return []

        def work(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            # Deleted and answered in one statement inside the write lock: no other process gets these.
            taken = db.execute(
                "DELETE FROM jobs WHERE n IN (SELECT n FROM jobs WHERE due <= ? ORDER BY due, n LIMIT ?) "
                "RETURNING due, n, tenant, raw",
                (now, limit),
            ).fetchall()
            taken.sort()  # RETURNING's order is not defined: earliest first, then as queued
            return [(tenant, bytes(raw)) for _, _, tenant, raw in taken]

        return await self._submit(work)

    async def log_attempt(self, key: str, hook_id: str, raw: bytes) -> None:
        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM tenants WHERE key = ?", (key,)).fetchone() is None:
                return  # an attempt creates no tenant
            db.execute("INSERT INTO attempts (tenant, hook, raw) VALUES (?, ?, ?)", (key, hook_id, raw))
            db.execute(
                "DELETE FROM attempts WHERE tenant = ?1 AND hook = ?2 AND n <= "
                "(SELECT n FROM attempts WHERE tenant = ?1 AND hook = ?2 ORDER BY n DESC LIMIT 1 OFFSET ?3)",
                (key, hook_id, ATTEMPTS_KEPT),
            )  # the endpoint's newest ATTEMPTS_KEPT stay (a walk of that many index entries: attempts are rare)

        await self._submit(work)

    async def attempts(self, key: str, hook_id: str) -> list[bytes]:
        rows = self._read("SELECT raw FROM attempts WHERE tenant = ? AND hook = ? ORDER BY n", (key, hook_id))
        return [bytes(raw) for (raw,) in rows]

    # -- the request journal ----------------------------------------------------------------------
    # Rows beyond the newest `journal_size` are deleted every _TRIM_EVERY inserts; until then every
    # read looks only at the newest `journal_size` (n > the newest n - journal_size).
    def _floor(self) -> int:
        (newest,) = self._read("SELECT COALESCE(MAX(n), 0) FROM journal")[0]
        return int(newest) - self.settings.journal_size

    async def record(self, entry: Entry) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO journal ({JOURNAL}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.id, entry.tenant, entry.method, entry.path, entry.query, entry.status, entry.started,
                    entry.duration, entry.idempotency_key, entry.scenario, entry.request_body, entry.response_body,
                    entry.notes(),
                ),
            )  # fmt: skip
            self._inserted += 1
            if self._inserted % _TRIM_EVERY == 0:
                db.execute(
                    "DELETE FROM journal WHERE n <= (SELECT MAX(n) FROM journal) - ?", (self.settings.journal_size,)
                )

        await self._submit(work)

    async def entries(self, tenant: str | None, limit: int | None = None) -> list[Entry]:
        where, args = (
            ("n > ? AND tenant = ?", (self._floor(), tenant)) if tenant is not None else ("n > ?", (self._floor(),))
        )
        rows = self._read(f"SELECT {JOURNAL} FROM journal WHERE {where} ORDER BY n DESC LIMIT ?", (*args, limit or -1))
        return [_entry(row) for row in rows]

    async def entries_after(self, cursor: str) -> list[Entry] | None:
        floor = self._floor()
        if not cursor:
            return await self.entries(None)
        found = self._read("SELECT n FROM journal WHERE id = ? AND n > ?", (cursor, floor))
        if not found:
            return None
        rows = self._read(f"SELECT {JOURNAL} FROM journal WHERE n > ? ORDER BY n DESC", (found[0][0],))
        return [_entry(row) for row in rows]

    async def journal_stats(self, tenant: str | None) -> tuple[int, float | None, str]:
        floor = self._floor()
        newest = self._read("SELECT id FROM journal ORDER BY n DESC LIMIT 1")
        if tenant is None:
            count, last = self._read("SELECT COUNT(*), MAX(started) FROM journal WHERE n > ?", (floor,))[0]
        else:
            count, last = self._read(
                "SELECT COUNT(*), (SELECT started FROM journal WHERE tenant = ?1 AND n > ?2 ORDER BY n DESC LIMIT 1) "
                "FROM journal WHERE tenant = ?1 AND n > ?2",
                (tenant, floor),
            )[0]
        return int(count), last, newest[0][0] if newest else ""

    async def forget(self, tenant: str | None) -> None:
        def work(db: sqlite3.Connection) -> None:
            if tenant is None:
                db.execute("DELETE FROM journal")
            else:
                db.execute("DELETE FROM journal WHERE tenant = ?", (tenant,))

        return await self._submit(work)


class Checkpoints:
    """Checkpoints of one database file, run by a thread of their own with a connection of their
    own (started by the first commit's `nudge`): a passive checkpoint waits for no reader and
    no writer, so the event loop never waits for it. Python's sqlite3 lets go of the GIL while
    SQLite works, so the copy runs beside the loop, on another core when there is one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wake = threading.Event()
        self.stopping = False
        self.thread: threading.Thread | None = None

    def nudge(self) -> None:
        """A transaction committed: checkpoint soon."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)
            self.thread.start()
        if not self.wake.is_set():
            self.wake.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error:  # the file went away: the writer's own checkpoints are left, as before
            return
        try:
            while not self.stopping:  # read after every clear(): a stop() during the pause is seen
                self.wake.wait()
                time.sleep(_CHECKPOINT_PAUSE)
                self.wake.clear()
                # A failed checkpoint loses nothing (the log keeps every commit); the next one, or
                # the writer's own at _BACKSTOP_PAGES, copies it.
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()


class _Refused(Exception):
    """A write of a batch run without savepoints raised: the batch is run again with them."""


def _entry(row: tuple[Any, ...]) -> Entry:
    entry = Entry(*row[:-1])
    entry.fault, entry.findings = Entry.noted(row[-1])
    return entry

"""The SQLite store's tables and rows: the schema, the columns each query reads, and the records
made from them (sqlite.py does the reading and writing).

Webhook state (schema 4): `hooks` (a tenant's endpoints, oldest first by `n`; how many is the tenant
row's `hooks`), `jobs` (queued deliveries of every tenant, taken by `due`, a real unix time) and
`attempts` (each endpoint's delivery log, the newest ATTEMPTS_KEPT).

The three tables every charge writes to (`charges`, `events`, `journal`) number their rows without
AUTOINCREMENT, which costs a write to `sqlite_sequence` per row: a new row's number is one more than
the largest kept, so it may be that of a row deleted before (a reset's), which nothing refers to.
Files made before keep their AUTOINCREMENT tables; both kinds read and write alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.models import Charge, Summary

SCHEMA_VERSION = "4"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (
    key TEXT PRIMARY KEY, used REAL NOT NULL, clock_offset REAL NOT NULL DEFAULT 0,
    rules_version TEXT, uploaded INTEGER NOT NULL DEFAULT 0, next_settle REAL,
    charges INTEGER NOT NULL DEFAULT 0, succeeded INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    refunds INTEGER NOT NULL DEFAULT 0, keys INTEGER NOT NULL DEFAULT 0, marks INTEGER NOT NULL DEFAULT 0,
    last_second INTEGER NOT NULL DEFAULT 0, dirty INTEGER NOT NULL DEFAULT 0, hooks INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS tenants_used ON tenants (used);
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL, amount INTEGER NOT NULL,
    currency TEXT NOT NULL, description TEXT, metadata TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, second INTEGER NOT NULL, amount_refunded INTEGER NOT NULL,
    failure_code TEXT, scenario TEXT, settle_at REAL, settled_at REAL, settle_to TEXT, settle_code TEXT,
    rank INTEGER NOT NULL, srank INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS charges_id ON charges (tenant, id);
CREATE INDEX IF NOT EXISTS charges_rank ON charges (tenant, rank);
CREATE INDEX IF NOT EXISTS charges_srank ON charges (tenant, status, srank);
CREATE INDEX IF NOT EXISTS charges_due ON charges (tenant, settle_at) WHERE settle_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS refunds (
    n INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, id TEXT NOT NULL, charge_id TEXT NOT NULL,
    amount INTEGER NOT NULL, reason TEXT, metadata TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL, scenario TEXT);
CREATE INDEX IF NOT EXISTS refunds_charge ON refunds (tenant, charge_id);
CREATE TABLE IF NOT EXISTS keys (
    n INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, key TEXT NOT NULL,
    fingerprint TEXT NOT NULL, created REAL NOT NULL, reply TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS keys_key ON keys (tenant, key);
CREATE TABLE IF NOT EXISTS marks (n INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, marker TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS marks_marker ON marks (tenant, marker);
CREATE TABLE IF NOT EXISTS rules (tenant TEXT PRIMARY KEY, version TEXT NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    n INTEGER PRIMARY KEY, id TEXT NOT NULL, tenant TEXT, method TEXT NOT NULL, path TEXT NOT NULL,
    query TEXT NOT NULL, status INTEGER NOT NULL, started REAL NOT NULL, duration REAL NOT NULL,
    idempotency_key TEXT, scenario TEXT, request_body BLOB, response_body BLOB NOT NULL, notes TEXT);
CREATE INDEX IF NOT EXISTS journal_tenant ON journal (tenant, n);
CREATE TABLE IF NOT EXISTS events (n INTEGER PRIMARY KEY, tenant TEXT NOT NULL, raw BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_tenant ON events (tenant, n);
CREATE TABLE IF NOT EXISTS hooks (
    n INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, id TEXT NOT NULL, raw BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS hooks_id ON hooks (tenant, id);
CREATE TABLE IF NOT EXISTS jobs (
    n INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, due REAL NOT NULL, raw BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant);
CREATE TABLE IF NOT EXISTS attempts (
    n INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, hook TEXT NOT NULL, raw BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_hook ON attempts (tenant, hook, n);
"""
CHARGE = (
    "id, seq, amount, currency, description, metadata, status, created, amount_refunded, failure_code, "
    "scenario, settle_at, settled_at, settle_to, settle_code"
)
TENANT = "key, clock_offset, rules_version, next_settle, hooks"
SUMMARY = "key, charges, succeeded, pending, failed, refunds, clock_offset, uploaded, next_settle"
JOURNAL = (
    "id, tenant, method, path, query, status, started, duration, idempotency_key, scenario, request_body, "
    "response_body, notes"
)


@dataclass(frozen=True, slots=True)
class Meta:
    key: str
    clock_offset: float
    rules_version: str | None
    next_settle: float | None
    hooks: int  # webhook endpoints, counted on the row: the tenant read stays one query


def path_of(url: str) -> Path:
    """`sqlite:///a.db` -> a.db (relative), `sqlite:////srv/a.db` -> /srv/a.db (SQLAlchemy's convention)."""
    return Path(url[len("sqlite:///") :])


def charge_of(row: tuple[Any, ...]) -> Charge:
    (cid, seq, amount, currency, description, metadata, status, created, refunded, failure) = row[:10]
    charge = Charge(cid, seq, amount, currency, description, json.loads(metadata), status, created, refunded, failure)
    charge.scenario, charge.settle_at, charge.settled_at, charge.settle_to, charge.settle_code = row[10:]
    return charge


def summary_of(row: tuple[Any, ...]) -> Summary:
    key, charges, succeeded, pending, failed, refunds, offset, uploaded, due = row
    counts = {"succeeded": succeeded, "pending": pending, "failed": failed}
    return Summary(key, charges, counts, refunds, offset, bool(uploaded), due)

"""Where the sandbox keeps its state: one `Store` interface and its engines.

    memory   this process's memory (the default; fastest, gone on restart, one process only)
    sqlite   a SQLite file: durable on one host, shared by its worker processes
    redis    a Redis server: shared by many workers and hosts; durability is Redis's own

`open_store(settings)` picks the engine from `--store URL`. The interface names the atomic
operations the business rules need (payments.py keeps every rule and sees only this interface);
each engine makes each one atomic in its own way: one event loop for memory, a transaction for
SQLite, a Lua script or WATCH/MULTI for Redis. Never a lock in one process: several processes and
hosts may share one store.
"""

from __future__ import annotations

from sandbox.errors import ConfigError
from sandbox.settings import Settings
from sandbox.stores.base import Store, StoreUnavailable, TenantMeta

__all__ = ["Store", "StoreUnavailable", "TenantMeta", "check_reachable", "open_store", "store_kind"]


def store_kind(url: str) -> str:
    """The engine a `--store` URL names, or ConfigError with the fix."""
    if url == "memory":
        return "memory"
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return "sqlite"
    if scheme in ("redis", "rediss") and url.startswith(scheme + "://"):
        return "redis"
    raise ConfigError(
        f"--store {url[:100]!r}: not a store URL; use memory, sqlite:///relative/path.db, "
        "sqlite:////absolute/path.db, redis://host:port/db or rediss://host:port/db."
    )


def open_store(settings: Settings) -> Store:
    """The engine for `settings.store` (a Redis engine connects on first use, a SQLite one at once)."""
    kind = store_kind(settings.store)
    if kind == "sqlite":
        from sandbox.stores.sqlite import SQLiteStore

        return SQLiteStore(settings)
    if kind == "redis":
        from sandbox.stores.redis import RedisStore

        return RedisStore(settings)
    from sandbox.stores.memory import MemoryStore

    return MemoryStore(settings)


def check_reachable(settings: Settings) -> None:
    """At start: ConfigError, naming the URL and the fix, when a Redis store does not answer. (A
    SQLite file is opened, and checked, when its store is made.)"""
    if store_kind(settings.store) != "redis":
        return
    import redis

    try:
        with redis.Redis.from_url(settings.store, socket_timeout=3, socket_connect_timeout=3) as client:
            client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ConfigError(
            f"--store {settings.store}: no Redis answers there ({exc}); start redis-server or fix the URL."
        ) from exc

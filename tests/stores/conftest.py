"""A `store` of every engine, fresh for each test: the Store interface's own tests run on all of them;
a `pair` of stores sharing their state, as two worker processes do.

memory: a new one; sqlite: a new file; redis: database 1 of the session's redis-server, flushed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.settings import Settings
from sandbox.stores import Store, open_store

ENGINES = ["memory", "sqlite", "redis"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def store_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'sandbox.db'}"
    if engine == "redis":
        return str(request.getfixturevalue("redis_url")) + "/1"
    return "memory"


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = open_store(Settings(store=store_url(request.param, tmp_path, request), journal_size=50))
    await made.reset(None)  # a redis database may hold an earlier test's state
    try:
        yield made
    finally:
        await made.reset(None)
        await made.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores sharing their state, as two worker processes do (memory: one store, twice)."""
    url = {"memory": "memory", "sqlite": f"sqlite:///{tmp_path / 'shared.db'}"}.get(request.param)
    settings = Settings(store=url or f"{request.getfixturevalue('redis_url')}/1", journal_size=50)
    first = open_store(settings)
    second = open_store(settings) if request.param != "memory" else first
    await first.reset(None)
    try:
        yield first, second
    finally:
        await first.reset(None)
        await first.close()
        if second is not first:
            await second.close()

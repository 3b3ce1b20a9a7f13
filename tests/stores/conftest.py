"""A `store` of every engine, fresh for each test: the Store interface's own tests run on all of them.

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

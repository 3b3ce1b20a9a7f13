"""A `store` of every engine, fresh for each test: the Store interface's own tests run on all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.settings import Settings
from sandbox.stores import Store, open_store

ENGINES = ["memory"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=ENGINES)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    made = open_store(Settings(store=request.param))
    try:
        yield made
    finally:
        await made.reset(None)
        await made.close()

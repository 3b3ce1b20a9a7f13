"""Heavy, pure work off the event loop: parsing a scenario upload, making fake charges.

Such work takes up to a second or so (10,000 rules, 10,000 charges); on the event loop it would
hold up every other request. It runs on a worker thread instead, one job at a time, so that
concurrent uploads cannot multiply its memory, and its result is stored back on the loop in one
synchronous step (the store is never touched from the thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


class Worker:
    def __init__(self) -> None:
        self._one_at_a_time = asyncio.Semaphore(1)

    async def run(self, job: Callable[[], T]) -> T:
        async with self._one_at_a_time:
            return await run_in_threadpool(job)

"""The SQLite store's checkpoints (a thread of the process copies committed writes from the
write-ahead log into the database file): closing the store stops that thread, also when it is
closed in the moment between a commit and the checkpoint that commit asked for."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from sandbox.models import Charge, Status
from sandbox.settings import Settings
from sandbox.stores.sqlite import _CHECKPOINT_PAUSE, SQLiteStore

pytestmark = pytest.mark.anyio


def checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sqlite-checkpoints" and t.is_alive()]


async def test_closing_right_after_a_write_stops_the_checkpoint_thread(tmp_path: Path) -> None:
    before = checkpointers()
    store = SQLiteStore(Settings(store=f"sqlite:///{tmp_path / 'closing.db'}"))
    await store.add_charge(
        "tn_a", Charge("ch_1", 0, 100, "USD", None, {}, Status.SUCCEEDED, 1_000_000.0), None, None, []
    )
    assert len(checkpointers()) == len(before) + 1  # the first commit started it
    await asyncio.sleep(_CHECKPOINT_PAUSE / 2)  # the thread now waits out its pause before checkpointing
    await store.close()
    assert checkpointers() == before


async def test_a_store_that_never_wrote_starts_no_thread(tmp_path: Path) -> None:
    before = checkpointers()
    store = SQLiteStore(Settings(store=f"sqlite:///{tmp_path / 'idle.db'}"))
    assert await store.charge("tn_a", "ch_1") is None
    assert checkpointers() == before
    await store.close()

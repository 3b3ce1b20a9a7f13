"""The SQLite store's checkpoints (a thread of the process copies committed writes from the
write-ahead log into the database file): closing the store stops that thread, also when it is
closed in the moment between a commit and the checkpoint that commit asked for."""

from __future__ import annotations

import asyncio
import shutil
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


async def test_a_database_whose_folder_is_gone_still_takes_writes_without_thread_errors(tmp_path: Path) -> None:
    """The thread cannot open the file (its folder was removed while the store runs): the store's own
    connection still writes, and the thread ends quietly (its checkpoints are the writer's again)."""
    folder = tmp_path / "gone"
    folder.mkdir()
    store = SQLiteStore(Settings(store=f"sqlite:///{folder / 'gone.db'}"))
    shutil.rmtree(folder)
    raised: list[threading.ExceptHookArgs] = []
    before, threading.excepthook = threading.excepthook, raised.append
    try:
        await store.add_charge("tn_a", Charge("ch_1", 0, 100, "USD", None, {}, Status.SUCCEEDED, 1.0), None, None, [])
        assert (await store.charge("tn_a", "ch_1")) is not None
        await store.close()
    finally:
        threading.excepthook = before
    assert raised == []

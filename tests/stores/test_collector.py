"""The memory store keeps the garbage collector's full passes short however much it holds: stored
charges are moved out of the collector's sight, so a full pass walks only what is new. Counted in a
subprocess of its own (objects the collector tracks, not seconds), so that nothing else the test
session keeps in memory counts."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import asyncio, gc
from sandbox.models import Charge, Status
from sandbox.settings import Settings
from sandbox.stores.memory import MemoryStore

async def main():
    store = MemoryStore(Settings())
    gc.collect()
    before = len(gc.get_objects())
    for n in range(200_000):
        charge = Charge(f"ch_{n}", 0, 1500, "USD", None, {"order": str(n)}, Status.SUCCEEDED, 1e9 + n)
        await store.add_charge("tn_gc", charge, None, None, [])
    gc.collect()
    print(len(gc.get_objects()) - before, gc.get_freeze_count())

asyncio.run(main())
"""


def test_stored_charges_are_out_of_the_collectors_sight() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    tracked, frozen = map(int, done.stdout.split())
    # Each stored charge is at least one object the collector tracks: 200,000 without the freeze;
    # with it, at most the last 10,000 charges' worth (each with its metadata) stay in sight.
    assert tracked <= 2 * 10_000 + 1_000, tracked
    assert frozen >= 200_000 - 10_000

"""Ids: unique, in the contract's alphabet, and in the order they were made (a store's index on
them takes each new one next to the last: see sandbox.models.new_id)."""

from __future__ import annotations

import re
import time

from sandbox.models import new_id


def test_an_id_is_its_prefix_and_24_letters_or_digits() -> None:
    assert re.fullmatch(r"ch_[A-Za-z0-9]{24}", new_id("ch_"))
    assert re.fullmatch(r"evt_[A-Za-z0-9]{24}", new_id("evt_"))


def test_ids_do_not_repeat() -> None:
    ids = [new_id("ch_") for _ in range(20_000)]  # most of them in one millisecond
    assert len(set(ids)) == len(ids)


def test_ids_made_later_sort_after_earlier_ones() -> None:
    made = []
    for _ in range(5):
        made.append(new_id("ch_"))
        time.sleep(0.002)
    assert made == sorted(made)


def test_the_time_part_counts_milliseconds_since_1970() -> None:
    before = int(time.time() * 1000)
    stamp = new_id("")[:8]
    after = int(time.time() * 1000)
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    value = 0
    for letter in stamp:
        value = value * 62 + digits.index(letter)
    assert before <= value <= after

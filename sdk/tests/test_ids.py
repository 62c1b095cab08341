"""Prediction ids: canonical UUIDv7 strings, unique, in generation order."""

from __future__ import annotations

import threading
import time
import uuid

from inferwatch.ids import new_ids


def test_ids_are_canonical_uuid7() -> None:
    for value in new_ids(1) + new_ids(50):
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value and len(value) == 36


def test_ids_carry_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    (value,) = new_ids(1)
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(value).int >> 80 <= after + 1


def test_ids_increase_within_and_across_batches() -> None:
    ids = new_ids(3) + new_ids(1) + new_ids(5000) + new_ids(1) + new_ids(2)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_batch_and_single_paths_agree_on_layout() -> None:
    # The vectorised batch and the pure-Python single id must lay out the same bits.
    single = uuid.UUID(new_ids(1)[0])
    batch = [uuid.UUID(v) for v in new_ids(2)]
    for parsed in (single, *batch):
        assert parsed.int >> 76 & 0xF == 7
        assert parsed.int >> 62 & 0b11 == 0b10


def test_ids_from_many_threads_are_unique() -> None:
    results: list[list[str]] = []

    def work() -> None:
        mine: list[str] = []
        for size in (1, 7, 1, 100) * 25:
            mine.extend(new_ids(size))
        results.append(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for chunk in results for value in chunk]
    assert len(every) == 4 * 25 * 109
    assert len(set(every)) == len(every)
    for chunk in results:
        assert chunk == sorted(chunk)


def test_zero_ids() -> None:
    assert new_ids(0) == []

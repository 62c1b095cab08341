"""The ids header's batch of new ids: the SDK's UUIDv7 layout, counter and order."""

from __future__ import annotations

import uuid

import pytest

from inferwatch.ids import new_ids
from inferwatch.middleware.ids import format_ids, new_ids_text

COUNTER_LOW_BITS = 30


def fields(text: str) -> tuple[int, int, int]:
    """(millisecond, counter, random bits) of an id, checking it is a canonical UUIDv7."""
    parsed = uuid.UUID(text)
    assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    value = parsed.int
    counter = (((value >> 64) & 0xFFF) << COUNTER_LOW_BITS) | ((value >> 32) & 0x3FFFFFFF)
    return value >> 80, counter, value & 0xFFFFFFFF


@pytest.mark.parametrize(
    ("ms", "counter", "count"),
    [
        (1_717_000_000_000, 5, 3),
        # Across the boundaries where the ids' shared digits change.
        (1_717_000_000_000, 0xFFFE, 4),
        (1_717_000_000_000, (1 << COUNTER_LOW_BITS) - 2, 4),
        (1_717_000_000_000, 0x1FFF0, 0x10020),
        (0, (1 << 42) - 3, 3),
    ],
)
def test_ids_hold_consecutive_counter_values(ms: int, counter: int, count: int) -> None:
    ids = format_ids(ms, counter, count).split(",")

    assert len(ids) == count
    parsed = [fields(text) for text in ids]
    assert [p[:2] for p in parsed] == [(ms, counter + i) for i in range(count)]
    assert ids == sorted(ids)
    assert len({p[2] for p in parsed}) > count * 0.99  # 32 random bits each


def test_new_ids_take_their_place_among_the_sdks() -> None:
    before = new_ids(2)
    batch = new_ids_text(100).split(",")
    one = new_ids_text(1).split(",")
    after = new_ids(2)

    assert len(batch) == 100 and len(one) == 1
    everything = [*before, *batch, *one, *after]
    assert everything == sorted(everything) and len(set(everything)) == len(everything)
    for text in everything:
        fields(text)

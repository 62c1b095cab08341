"""Prediction ids: time-ordered UUIDv7 strings (RFC 9562), generated a batch at a time.

Ids from one process are strictly increasing: the 12 ``rand_a`` bits and the top 30 bits of
``rand_b`` form a 42-bit counter (RFC 9562 section 6.2, method 1), seeded at random each
millisecond with its top bit clear so that it has room to count; the last 32 bits are random.
A batch takes consecutive counter values, so ids sort in the order the rows were predicted.
"""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np

_COUNTER_BITS = 42
_COUNTER_LIMIT = 1 << _COUNTER_BITS
_LOW_COUNTER_BITS = 30
# Each id is laid out as its 32 hex digits, a dash and a space (the separator between ids);
# _LAYOUT picks, for each of the 36 characters of the canonical form (8-4-4-4-12 digits) and
# the separator after it, which of those 34 it is.
_DASH_AT, _SPACE_AT = 32, 33
_LAYOUT = np.array(
    [
        *range(0, 8), _DASH_AT, *range(8, 12), _DASH_AT, *range(12, 16), _DASH_AT,
        *range(16, 20), _DASH_AT, *range(20, 32), _SPACE_AT,
    ]
)  # fmt: skip

_lock = threading.Lock()
_last_ms = 0
_next_counter = 0


def reserve_counters(count: int) -> tuple[int, int]:
    """A millisecond timestamp and the first of ``count`` consecutive unused counter values.

    Public so that code formatting ids its own way (the middleware writes them straight into a
    header) still draws from the one counter that keeps all ids of this process ordered.
    """
    global _last_ms, _next_counter
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        if now_ms > _last_ms:
            ms, counter = now_ms, _random_seed()
        else:
            # Same millisecond (or the clock stepped back): keep counting from the last id.
            ms, counter = _last_ms, _next_counter
        if counter + count > _COUNTER_LIMIT:
            # The counter is spent for this millisecond: borrow the next one, as RFC 9562 allows.
            ms, counter = ms + 1, _random_seed()
        _last_ms = ms
        _next_counter = counter + count
    return ms, counter


def _random_seed() -> int:
    # Python's random is reseeded in a forked child, so workers do not share sequences.
    return random.getrandbits(_COUNTER_BITS - 1)


def _after_fork_in_child() -> None:
    # Another thread of the parent may have held the lock at the fork. The counter is drawn
    # afresh: the parent goes on counting from the same value, and within one millisecond the
    # two would otherwise differ only in their 32 random bits.
    global _lock, _next_counter
    _lock = threading.Lock()
    _next_counter = _random_seed()


os.register_at_fork(after_in_child=_after_fork_in_child)


def new_id() -> str:
    """One new UUIDv7 id: the common single-row call, kept to a few integer operations."""
    global _last_ms, _next_counter
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        if now_ms > _last_ms:
            ms, counter = now_ms, _random_seed()
        else:
            ms, counter = _last_ms, _next_counter
            if counter >= _COUNTER_LIMIT:
                ms, counter = ms + 1, _random_seed()
        _last_ms = ms
        _next_counter = counter + 1
    return "%08x-%04x-%04x-%04x-%04x%08x" % (  # noqa: UP031 - measured faster than f-strings
        ms >> 16,
        ms & 0xFFFF,
        0x7000 | (counter >> _LOW_COUNTER_BITS),
        0x8000 | ((counter >> 16) & 0x3FFF),
        counter & 0xFFFF,
        random.getrandbits(32),
    )


def new_ids(count: int) -> list[str]:
    """``count`` new UUIDv7 ids in canonical 36-character form, in increasing order."""
    if count <= 0:
        return []
    if count > _COUNTER_LIMIT >> 1:
        raise ValueError(f"at most {_COUNTER_LIMIT >> 1} ids at once, asked for {count}")
    if count == 1:
        return [new_id()]
    ms, counter = reserve_counters(count)
    counters = np.arange(counter, counter + count, dtype=np.uint64)
    high = np.uint64((ms << 16) | 0x7000) | (counters >> np.uint64(_LOW_COUNTER_BITS))
    low_counter = counters & np.uint64((1 << _LOW_COUNTER_BITS) - 1)
    random_bits = np.frombuffer(os.urandom(4 * count), dtype=np.uint32).astype(np.uint64)
    low = np.uint64(1 << 63) | (low_counter << np.uint64(32)) | random_bits
    words = np.empty((count, 2), dtype=">u8")
    words[:, 0] = high
    words[:, 1] = low
    digits = np.empty((count, 34), dtype=np.uint8)
    digits[:, :32] = np.frombuffer(words.tobytes().hex().encode("ascii"), dtype=np.uint8).reshape(
        count, 32
    )
    digits[:, _DASH_AT] = ord("-")
    digits[:, _SPACE_AT] = ord(" ")
    # Splitting one string makes the 1,000 strings of a batch ~3x faster than slicing it.
    return digits[:, _LAYOUT].tobytes()[:-1].decode("ascii").split(" ")

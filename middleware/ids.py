"""A batch of new prediction ids as the text of the ids header, made while the response waits.

The ids are those of ``inferwatch.ids`` (UUIDv7, counter reserved there, so that they keep its
order and uniqueness); only the formatting differs. ``inferwatch.ids.new_ids`` builds a batch
with a dozen numpy operations: measured in a BentoML worker, where the request path runs with
cold caches, 100 ids took ~210 us. Here a batch is formatted by a few bytes and str operations
(~100 us there, ~20 us in a hot loop), and joined as the header needs them.
"""

from __future__ import annotations

import random
import struct

from inferwatch.ids import _reserve, new_id

__all__ = ["new_ids_text"]

_LOW_BITS = 16
_LOW_RUN = 1 << _LOW_BITS
# The counter's bits that are not in the last group, split as the UUID's 3rd and 4th groups.
_COUNTER_HIGH_SHIFT = 30


def new_ids_text(count: int) -> str:
    """``count`` (>= 1) new ids, comma-separated, in increasing order."""
    if count == 1:
        return new_id()
    ms, counter = _reserve(count)
    return format_ids(ms, counter, count)


def format_ids(ms: int, counter: int, count: int) -> str:
    """The ids of ``count`` consecutive counter values from ``counter`` in millisecond ``ms``,
    laid out as ``inferwatch.ids`` lays them out, joined by commas."""
    ms_groups = "%08x-%04x-" % (ms >> 16, ms & 0xFFFF)  # noqa: UP031 - faster than f-strings
    runs: list[str] = []
    done = 0
    while done < count:
        # Within a run, the counter's top bits are fixed: the ids share all but their last 12
        # digits, the counter's low 16 bits and 32 random bits.
        value = counter + done
        low = value & (_LOW_RUN - 1)
        run = min(count - done, _LOW_RUN - low)
        prefix = "%s%04x-%04x-" % (  # noqa: UP031
            ms_groups,
            0x7000 | (value >> _COUNTER_HIGH_SHIFT),
            0x8000 | ((value >> _LOW_BITS) & 0x3FFF),
        )
        # Six bytes an id: the low counter bits, then random bits (random, not os.urandom,
        # which releases the GIL mid-request). Forked workers reseed random.
        tails = bytearray(random.getrandbits(48 * run).to_bytes(6 * run, "big"))
        lows = struct.pack(f">{run}H", *range(low, low + run))
        tails[0::6] = lows[0::2]
        tails[1::6] = lows[1::2]
        runs.append(prefix + tails.hex(",", 6).replace(",", "," + prefix))
        done += run
    return ",".join(runs)

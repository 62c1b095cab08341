"""Where each prediction id is: the index ingest writes and the label join reads.

Per stored batch, prediction_batches keeps its ids and output frame (one row per span). An id's
key is its 16 bytes when it is a canonical lower-case UUID (what the SDK makes), else its text; a
batch's ids are its keys end to end when all are UUIDs, else a JSON array of their text. A batch
of UUIDs of one millisecond (one SDK call makes them so) is indexed by its millisecond (a
UUIDv7's first 48 bits) and the range of its keys, one prediction_ranges row: a label's key is
looked for in the batches of its millisecond whose range holds it. Other batches get one narrow
prediction_ids row per id, where an id seen before keeps its first prediction.
"""

from __future__ import annotations

import json
import re
import sqlite3
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import chain, count, repeat

import numpy as np

from inferwatch.collector.storage.sqlite.database import CHUNK, marks

# A batch as ingest stores it in prediction_batches: seq, model key, window id, start time, ids
# (as stored), output frame.
KeptBatch = tuple[int, int, int, int, bytes | str, bytes]
# Where a prediction is: (window id, batch seq, row in the batch).
Spot = tuple[int, int, int]

# Index rows for stored batches ?1 .. ?2 whose ids are a JSON array, read by SQLite itself.
_INDEX_TEXT = (
    "INSERT INTO prediction_ids (model_key, id_key, batch, row) "
    "SELECT b.model_key, j.value, b.seq, j.key FROM prediction_batches b, json_each(b.ids) j "
    "WHERE b.seq BETWEEN ? AND ? AND typeof(b.ids) = 'text' ORDER BY b.seq, j.key "
    "ON CONFLICT DO NOTHING"
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_DASHES = (8, 13, 18, 23)
_KEY = np.dtype("V16")


def index_batches(
    db: sqlite3.Connection,
    kept: Sequence[KeptBatch],
    keys: Sequence[Sequence[bytes | str] | None],
) -> None:
    """Index the ids of the batches just stored, ``keys`` being what ``stored_ids`` listed.

    A prediction_ranges row costs one insert a batch. Per-id rows of plain text ids are read
    from the stored JSON by SQLite (no Python work a row); the others are listed here, in
    the order the batches were stored, so that an id seen before keeps its first.
    """
    ranges: list[tuple[int, int, bytes, bytes, int]] = []
    per_id: list[tuple[int, int, bytes | str, Sequence[bytes | str] | None]] = []
    for (seq, model_key, _, _, ids, _), listed in zip(kept, keys, strict=True):
        if isinstance(ids, bytes):
            bounds = _key_range(ids)
            if bounds is not None:
                ranges.append((model_key, _millisecond(bounds[0]), *bounds, seq))
                continue
            listed = batch_keys(ids)
        per_id.append((seq, model_key, ids, listed))
    db.executemany(
        "INSERT INTO prediction_ranges (model_key, ms, first_key, last_key, batch) "
        "VALUES (?, ?, ?, ?, ?)",
        ranges,
    )
    if not per_id:
        return
    if all(listed is None for *_, listed in per_id):
        db.execute(_INDEX_TEXT, (per_id[0][0], per_id[-1][0]))
        return
    db.executemany(
        "INSERT INTO prediction_ids (model_key, id_key, batch, row) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        chain.from_iterable(
            zip(
                repeat(model_key),
                batch_keys(ids) if listed is None else listed,
                repeat(seq),
                count(),
            )
            for seq, model_key, ids, listed in per_id
        ),
    )


def first_predictions(
    db: sqlite3.Connection, model_key: int, ids: Sequence[str]
) -> dict[str, tuple[Spot, bool]]:
    """Each id's first prediction, if stored, and whether it has a label already."""
    named = dict(zip(_id_keys(ids), ids, strict=True))
    # Keys one by one: text keys, and UUID keys if any batch had them listed (blobs sort
    # after text, so the first blob key says).
    listed: list[bytes | str] = [key for key in named if not isinstance(key, bytes)]
    if db.execute(
        "SELECT 1 FROM prediction_ids WHERE model_key = ? AND id_key >= x'' LIMIT 1",
        (model_key,),
    ).fetchone():
        listed = list(named)
    where: dict[bytes | str, Spot] = {
        key: (window_id, batch, row)
        for key, window_id, batch, row in db.execute(
            "SELECT i.id_key, b.window_id, i.batch, i.row FROM prediction_ids i "
            "JOIN prediction_batches b ON b.seq = i.batch "
            f"WHERE i.model_key = ? AND i.id_key IN ({marks(len(listed))})",
            (model_key, *listed),
        )
    }
    # UUID keys by range: the batches of their millisecond whose range holds them, then
    # where in those batches' keys they are.
    by_ms: dict[int, list[bytes]] = {}
    for key in named:
        if isinstance(key, bytes):
            by_ms.setdefault(_millisecond(key), []).append(key)
    for keys in by_ms.values():
        keys.sort()
    holding: dict[int, list[bytes]] = {}
    for ms, first, last, batch in db.execute(
        "SELECT ms, first_key, last_key, batch FROM prediction_ranges "
        f"WHERE model_key = ? AND ms IN ({marks(len(by_ms))})",
        (model_key, *by_ms),
    ):
        keys = by_ms[ms]
        inside = keys[bisect_left(keys, first) : bisect_right(keys, last)]
        if inside:
            holding.setdefault(batch, []).extend(inside)
    for seq, window_id, packed in db.execute(
        f"SELECT seq, window_id, ids FROM prediction_batches WHERE seq IN ({marks(len(holding))})",
        list(holding),
    ):
        for key, row in _rows_of(packed, holding[seq]).items():
            if key not in where or seq < where[key][1]:
                where[key] = (window_id, seq, row)
    labelled = _labelled(db, where.values())
    return {named[key]: (spot, spot in labelled) for key, spot in where.items()}


def _labelled(db: sqlite3.Connection, spots: Iterable[Spot]) -> set[Spot]:
    """Which of these spots have a label: the labels of their batches, read by the table's key,
    a range per window."""
    batches: dict[int, set[int]] = {}
    for window_id, batch, _ in spots:
        batches.setdefault(window_id, set()).add(batch)
    found: set[Spot] = set()
    for window_id, seqs in batches.items():
        listed = sorted(seqs)
        for i in range(0, len(listed), CHUNK):
            chunk = listed[i : i + CHUNK]
            found.update(
                (window_id, batch, row)
                for batch, row in db.execute(
                    "SELECT batch, row FROM labels "
                    f"WHERE window_id = ? AND batch IN ({marks(len(chunk))})",
                    (window_id, *chunk),
                )
            )
    return found


def stored_ids(ids: Sequence[str]) -> tuple[bytes | str, Sequence[bytes | str] | None]:
    """A batch's ids as prediction_batches keeps them, and their keys if SQLite cannot cut them.

    All canonical UUIDs (what the SDK makes): their keys end to end. Otherwise a JSON array,
    from which SQLite reads the keys unless some id is a UUID (its key is its bytes) or holds a
    NUL (which json_each cuts short); then the keys are listed.
    """
    packed = _packed_uuids(ids)
    if packed is not None:
        return packed, None
    text = json.dumps(ids, separators=(",", ":"))
    if "\0" in "".join(ids) or 36 in set(map(len, ids)):
        return text, [_id_key(pid) for pid in ids]
    return text, None


def batch_keys(ids: bytes | str) -> list[bytes | str]:
    """The keys of a batch's ids as prediction_batches keeps them."""
    if isinstance(ids, bytes):
        return [ids[i : i + 16] for i in range(0, len(ids), 16)]
    return [_id_key(pid) for pid in json.loads(ids)]


def _id_key(prediction_id: str) -> bytes | str:
    """The id's key in prediction_ids and prediction_ranges: 16 bytes for a canonical UUID,
    else its text."""
    if _UUID.fullmatch(prediction_id):
        return bytes.fromhex(prediction_id.replace("-", ""))
    return prediction_id


def _packed_uuids(ids: Sequence[str]) -> bytes | None:
    """The ids' keys end to end if all are canonical UUIDs, worked out for all at once (a regular
    expression and a conversion an id cost several times more)."""
    n = len(ids)
    joined = "".join(ids)
    if not (
        len(joined) == 36 * n
        and set(map(len, ids)) <= {36}
        and joined.isascii()
        and joined.count("-") == 4 * n
        and joined == joined.lower()
        and all(joined[at::36] == "-" * n for at in _UUID_DASHES)
    ):
        return None
    try:
        packed = bytes.fromhex(joined.replace("-", ""))
    except ValueError:
        return None
    # fromhex skips whitespace, which would leave fewer bytes.
    return packed if len(packed) == 16 * n else None


def _id_keys(ids: Sequence[str]) -> list[bytes | str]:
    packed = _packed_uuids(ids)
    if packed is None:
        return [_id_key(pid) for pid in ids]
    return [packed[i : i + 16] for i in range(0, len(packed), 16)]


def _key_range(packed: bytes) -> tuple[bytes, bytes] | None:
    """The least and greatest of a batch's UUID keys, if all are of one millisecond."""
    if not packed:
        return None
    # Sorted as 16-byte opaque values (compared as bytes) in numpy: half the time of slicing
    # every key into a bytes object for min() and max().
    keys = np.sort(np.frombuffer(packed, _KEY))
    first, last = keys[:1].tobytes(), keys[-1:].tobytes()
    # Keys between two of one millisecond are of it too: a UUIDv7 begins with its time.
    return (first, last) if first[:6] == last[:6] else None


def _millisecond(key: bytes) -> int:
    """A UUIDv7's time: its first 48 bits."""
    return int.from_bytes(key[:6], "big")


def _rows_of(packed: bytes, keys: Sequence[bytes]) -> dict[bytes, int]:
    """The row of each of ``keys`` found among a batch's UUID keys."""
    if 8 * len(keys) < len(packed) // 16:
        # A few keys of a long batch: each looked for.
        found = {key: _row_of(packed, key) for key in keys}
        return {key: row for key, row in found.items() if row is not None}
    chunks = [packed[at : at + 16] for at in range(0, len(packed), 16)]
    # Reversed, so that a key there twice keeps its first row.
    rows = dict(zip(reversed(chunks), range(len(chunks) - 1, -1, -1), strict=True))
    return {key: rows[key] for key in keys if key in rows}


def _row_of(packed: bytes, key: bytes) -> int | None:
    """The row of ``key`` among a batch's UUID keys, or None."""
    at = packed.find(key)
    # A match across two keys is not one.
    while at > 0 and at % 16:
        at = packed.find(key, at + 1)
    return None if at < 0 else at // 16

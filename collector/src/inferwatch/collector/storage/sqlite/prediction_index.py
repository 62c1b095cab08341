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
from collections.abc import Sequence
from itertools import chain, count, repeat

import numpy as np

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


# The ids a label join looks for: a temporary table the caller fills, with these columns first
# (each id's key, and a UUID key's millisecond, NULL for a text key). Temporary tables, so that
# SQLite joins the ids to the index in a few statements instead of Python doing so id by id;
# they live on the writer's connection.
LOOKUP_COLUMNS = "key PRIMARY KEY, ms INTEGER"
# Where ``locate`` puts each found id's first prediction.
SPOTS = "temp.label_spots"
_SPOTS_COLUMNS = "key PRIMARY KEY, window_id INTEGER, batch INTEGER, row INTEGER"
# An id found twice keeps the earlier (batch, row).
_EARLIER = (
    "ON CONFLICT (key) DO UPDATE SET window_id = excluded.window_id, batch = excluded.batch, "
    "row = excluded.row WHERE (excluded.batch, excluded.row) < (batch, row)"
)

# The batches whose range holds a looked-for UUID key (the ranges of the keys' milliseconds,
# each probed in the table's key order).
_HOLDING = """
WITH holding AS MATERIALIZED (
    SELECT r.batch, r.first_key, r.last_key FROM (
        SELECT DISTINCT ms FROM {table} WHERE ms IS NOT NULL
    ) m
    CROSS JOIN prediction_ranges r ON r.model_key = ?1 AND r.ms = m.ms
    WHERE EXISTS (SELECT 1 FROM {table} j WHERE j.key BETWEEN r.first_key AND r.last_key)
)
"""
# Batches of up to ?2 rows holding a key: all their keys cut out by SQLite, each looked up in
# the table (a probe of its primary key; no key searched for in the batch's bytes).
_LOCATE_BY_RANGE = (
    _HOLDING
    + """, cut(at) AS MATERIALIZED (
    -- As many as the longest of those batches has rows: each batch's scan of it is short.
    SELECT 0 UNION ALL SELECT at + 1 FROM cut WHERE at + 1 < (
        SELECT max(length(b.ids) / 16) FROM holding h
        CROSS JOIN prediction_batches b ON b.seq = h.batch WHERE length(b.ids) / 16 <= ?2
    )
)
INSERT INTO {spots} (key, window_id, batch, row)
SELECT j.key, b.window_id, b.seq, c.at
FROM holding h
CROSS JOIN prediction_batches b ON b.seq = h.batch
CROSS JOIN cut c ON c.at < length(b.ids) / 16
CROSS JOIN {table} j ON j.key = substr(b.ids, c.at * 16 + 1, 16)
WHERE length(b.ids) / 16 <= ?2
{earlier}
"""
)
# Longer batches: the keys their range holds, found in Python (few are looked for in each
# such batch, and cutting out all of its keys would cost more).
_LONG_BATCHES = (
    _HOLDING
    + """SELECT b.seq, b.window_id, b.ids, j.key FROM holding h
CROSS JOIN prediction_batches b ON b.seq = h.batch
CROSS JOIN {table} j ON j.key BETWEEN h.first_key AND h.last_key
WHERE length(b.ids) / 16 > ?2
"""
)
_CUT_ROWS = 4096
# Keys of their own prediction_ids row.
_LOCATE_BY_ID = """
INSERT INTO {spots} (key, window_id, batch, row)
SELECT j.key, b.window_id, i.batch, i.row
FROM {table} j
CROSS JOIN prediction_ids i ON i.model_key = ?1 AND i.id_key = j.key
CROSS JOIN prediction_batches b ON b.seq = i.batch
WHERE {which}
{earlier}
"""


def create_lookup(db: sqlite3.Connection, table: str, columns: str) -> None:
    """The temporary table ``table`` of the ids to look for (LOOKUP_COLUMNS, then ``columns``)
    and SPOTS, unless this connection has them already."""
    db.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {table} ({LOOKUP_COLUMNS}, {columns}) WITHOUT ROWID"
    )
    db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {SPOTS} ({_SPOTS_COLUMNS}) WITHOUT ROWID")


def locate(db: sqlite3.Connection, model_key: int, table: str) -> None:
    """Each id of ``table`` (made by ``create_lookup``, its keys as ``lookup_keys`` gives them)
    with a stored prediction, put in SPOTS (empty before) with its first prediction's
    (window_id, batch, row). The caller empties both tables after."""
    names = {"table": table, "spots": SPOTS, "earlier": _EARLIER}
    db.execute(_LOCATE_BY_RANGE.format(**names), (model_key, _CUT_ROWS))
    long_batches = db.execute(_LONG_BATCHES.format(**names), (model_key, _CUT_ROWS)).fetchall()
    if long_batches:
        _locate_in_long_batches(db, long_batches)
    # Text keys one by one always; UUID keys too if any batch had them listed (blobs sort after
    # text, so the first blob key says): otherwise their lookups would all miss.
    listed = db.execute(
        "SELECT 1 FROM prediction_ids WHERE model_key = ? AND id_key >= x'' LIMIT 1",
        (model_key,),
    ).fetchone()
    which = "true" if listed else "j.ms IS NULL"
    db.execute(_LOCATE_BY_ID.format(which=which, **names), (model_key,))


def _locate_in_long_batches(
    db: sqlite3.Connection, candidates: Sequence[tuple[int, int, bytes, bytes]]
) -> None:
    """Each key's row in the long batches whose range holds it."""
    found = [
        (key, window_id, seq, row)
        for seq, window_id, packed, key in candidates
        if (row := _row_of(packed, key)) is not None
    ]
    db.executemany(
        f"INSERT INTO {SPOTS} (key, window_id, batch, row) VALUES (?, ?, ?, ?) {_EARLIER}",
        found,
    )


def lookup_keys(ids: Sequence[str]) -> tuple[list[bytes | str], list[int | None]]:
    """Each id's key, and its millisecond if it is a UUID key, as ``locate`` looks for them."""
    packed = _packed_uuids(ids)
    if packed is None:
        keys = [_id_key(pid) for pid in ids]
        return keys, [_millisecond(k) if isinstance(k, bytes) else None for k in keys]
    # All at once: a UUIDv7's time is its first 48 bits, big-endian.
    heads = np.frombuffer(packed, np.uint8).reshape(-1, 16)[:, :6].astype(np.int64)
    ms = heads @ (np.int64(256) ** np.arange(5, -1, -1, dtype=np.int64))
    keys = [packed[i : i + 16] for i in range(0, len(packed), 16)]
    return keys, ms.tolist()


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


def _row_of(packed: bytes, key: bytes) -> int | None:
    """The row of ``key`` among a batch's UUID keys, or None."""
    at = packed.find(key)
    # A match across two keys is not one.
    while at > 0 and at % 16:
        at = packed.find(key, at + 1)
    return None if at < 0 else at // 16

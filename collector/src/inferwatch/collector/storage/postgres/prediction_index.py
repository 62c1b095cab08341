"""Where each prediction id is: the index ingest writes and the label join reads.

One prediction_ids row per id of each stored batch, in the partition of its window's end (a
day each): retention drops the partitions of days before its horizon whole, and deletes rows in
the one day it cuts. An id's key is b"\\x00" and its 16 bytes for a canonical lower-case UUID
(what the SDK makes), else b"\\x01" and its UTF-8 text (lone surrogates kept), so that no text id
shares a key with a UUID. An id in several batches has a row in each; the first batch's counts.

A label's lookup probes the key's index in each partition it may touch, so a lookup over a
month of retention made ~30 probes a label. Given the model's ``IdReach``, a UUIDv7 key (the
SDK's ids) of time t is looked for first among the windows that end within
[t - before_ms, t + after_ms], which PostgreSQL narrows at run time to the partitions of those
days (one, or two around midnight); only the keys not found there, and every key that is not a
UUIDv7, are looked for in all partitions. So the first batch counts for every id the SDK makes
(it is stored only in windows within reach of its time) and for every id that is not a UUIDv7.
What differs: a UUIDv7 id stored first in a window outside its reach and later in one within
it (an id first used far from its own time) joins the first batch among those within reach,
not the earlier one outside (docs/scaling.md, "Which prediction a label joins").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from inferwatch.collector.labels.reach import IdReach

DAY_MS = 86_400_000
# pg_advisory_xact_lock(PARTITION_LOCK, hashtext(current_schema())): one partition made at a
# time, so replicas needing the same day make it once.
PARTITION_LOCK = 0x1F3A0002

# Where a prediction is: (window id, batch seq, row in the batch).
Spot = tuple[int, int, int]
# Bounds of window_end_ms that every row is within (PostgreSQL's bigint).
_MIN_MS, _MAX_MS = -(2**63), 2**63 - 1

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_DASHES = (8, 13, 18, 23)
_UUID_TAG = b"\x00"
_TEXT_TAG = b"\x01"


def id_keys(ids: Sequence[str]) -> list[bytes]:
    """The ids' keys, worked out for all at once when all are canonical UUIDs."""
    packed = packed_uuids(ids)
    if packed is None:
        return [id_key(pid) for pid in ids]
    return [_UUID_TAG + packed[at : at + 16] for at in range(0, len(packed), 16)]


def id_key(prediction_id: str) -> bytes:
    if _UUID.fullmatch(prediction_id):
        return _UUID_TAG + bytes.fromhex(prediction_id.replace("-", ""))
    return _TEXT_TAG + prediction_id.encode("utf-8", "surrogatepass")


def partition_day(window_end_ms: int) -> int:
    return window_end_ms // DAY_MS


def partition_name(day: int) -> str:
    # Made of an integer only: no outside text reaches the identifier.
    return f"prediction_ids_{'m' if day < 0 else 'd'}{abs(day)}"


def make_partitions(conn: psycopg.Connection[Any], days: Iterable[int]) -> None:
    """Create the partitions of these days where missing (one transaction, the caller's)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (PARTITION_LOCK,))
    for day in sorted(set(days)):
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF prediction_ids "
                "FOR VALUES FROM ({}) TO ({})"
            ).format(
                sql.Identifier(partition_name(day)),
                sql.Literal(day * DAY_MS),
                sql.Literal((day + 1) * DAY_MS),
            )
        )


def partitions(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """The existing partitions by day."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('prediction_ids')"
    ).fetchall()
    found: dict[int, str] = {}
    for (name,) in rows:
        sign, digits = name[len("prediction_ids_")], name[len("prediction_ids_") + 1 :]
        found[-int(digits) if sign == "m" else int(digits)] = name
    return found


class IndexRows:
    """The prediction_ids rows of a group of batches, as the columns two INSERTs take: the
    batches whose ids are all UUIDs (the SDK's) as their 16-byte keys end to end, cut into
    rows by the server, so that ingest does no Python work per row; the others row by row."""

    def __init__(self) -> None:
        self._packed: tuple[list[int], list[bytes], list[int], list[int]] = ([], [], [], [])
        self._rows: tuple[list[int], list[bytes], list[int], list[int], list[int]] = (
            [],
            [],
            [],
            [],
            [],
        )

    def add(self, model_key: int, ids: Sequence[str], window_end_ms: int, seq: int) -> None:
        packed = packed_uuids(ids)
        if packed is not None:
            model_keys, keys, ends, batches = self._packed
            model_keys.append(model_key)
            keys.append(packed)
            ends.append(window_end_ms)
            batches.append(seq)
            return
        n = len(ids)
        model_keys_, keys_, ends_, batches_, rows = self._rows
        model_keys_.extend([model_key] * n)
        keys_.extend(id_key(pid) for pid in ids)
        ends_.extend([window_end_ms] * n)
        batches_.extend([seq] * n)
        rows.extend(range(n))

    def insert(self, conn: psycopg.Connection[Any]) -> None:
        if self._packed[0]:
            conn.execute(
                "INSERT INTO prediction_ids (model_key, id_key, window_end_ms, batch, row) "
                "SELECT b.m, '\\x00'::bytea || substring(b.p FROM r * 16 + 1 FOR 16), b.e, "
                "b.s, r "
                "FROM unnest(%b::integer[], %b::bytea[], %b::bigint[], %b::bigint[]) "
                "AS b (m, p, e, s), generate_series(0, length(b.p) / 16 - 1) AS r",
                self._packed,
            )
        if self._rows[0]:
            conn.execute(
                "INSERT INTO prediction_ids (model_key, id_key, window_end_ms, batch, row) "
                "SELECT * FROM unnest(%b::integer[], %b::bytea[], %b::bigint[], %b::bigint[], "
                "%b::integer[])",
                self._rows,
            )


def first_predictions(
    conn: psycopg.Connection[Any],
    model_key: int,
    keys: Sequence[bytes],
    reach: IdReach | None = None,
) -> dict[bytes, tuple[Spot, bool]]:
    """Each key's first prediction, if stored, and whether it has a label already: for a
    UUIDv7 key, given ``reach``, first among the windows ending near its own time (see the
    module's docstring), then, if not there, anywhere."""
    found: dict[bytes, tuple[Spot, bool]] = {}
    if reach is not None:
        near = [(key, ms) for key in keys if (ms := uuid7_ms(key)) is not None]
        if near:
            found = _first_within(
                conn,
                model_key,
                [key for key, _ in near],
                [max(ms - reach.before_ms, _MIN_MS) for _, ms in near],
                [min(ms + reach.after_ms, _MAX_MS) for _, ms in near],
            )
    rest = [key for key in keys if key not in found] if found else list(keys)
    if rest:
        found.update(
            _first_within(conn, model_key, rest, [_MIN_MS] * len(rest), [_MAX_MS] * len(rest))
        )
    return found


def _first_within(
    conn: psycopg.Connection[Any],
    model_key: int,
    keys: list[bytes],
    earliest_end_ms: list[int],
    latest_end_ms: list[int],
) -> dict[bytes, tuple[Spot, bool]]:
    """Each key's first prediction among the windows ending within its bounds (inclusive)."""
    # One index probe per key and partition (LIMIT 1 per key): with ANY(keys) against a filled
    # index the planner chose sequential scans of every partition (8x slower at 10 M ids,
    # bench_postgres). The bounds come from each key's row, so the executor skips the
    # partitions outside them key by key (run-time pruning; test_postgres checks it does).
    found = conn.execute(
        "SELECT k.key, b.window_id, f.batch, f.row, "
        "EXISTS (SELECT 1 FROM labels l WHERE l.window_id = b.window_id AND l.batch = f.batch "
        "AND l.row = f.row) "
        "FROM unnest(%b::bytea[], %b::bigint[], %b::bigint[]) AS k (key, earliest, latest) "
        "CROSS JOIN LATERAL (SELECT i.batch, i.row FROM prediction_ids i "
        "WHERE i.model_key = %s AND i.id_key = k.key "
        "AND i.window_end_ms BETWEEN k.earliest AND k.latest "
        "ORDER BY i.batch, i.row LIMIT 1) AS f "
        "JOIN prediction_batches b ON b.seq = f.batch",
        (keys, earliest_end_ms, latest_end_ms, model_key),
    ).fetchall()
    return {
        bytes(key): ((window_id, batch, row), labelled)
        for key, window_id, batch, row, labelled in found
    }


def uuid7_ms(key: bytes) -> int | None:
    """The Unix-millisecond time in a UUIDv7 key (version 7, RFC 9562 variant), else None."""
    if len(key) == 17 and key[0] == 0 and key[7] >> 4 == 7 and key[9] >> 6 == 0b10:
        return int.from_bytes(key[1:7], "big")
    return None


def packed_uuids(ids: Sequence[str]) -> bytes | None:
    """The ids' 16 bytes end to end if all are canonical UUIDs (a regular expression and a
    conversion an id cost several times more)."""
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

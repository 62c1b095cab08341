"""The page size of the SQLite file: a new file's lets a journaled batch sit in one page; a
file made with another page size keeps it and is served as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from inferwatch.collector.storage.sqlite import open_sqlite
from inferwatch.collector.storage.sqlite.database import PAGE_SIZE

from .helpers import batch, window

# About what the journal keeps of a span of 100 rows x 20 float64 features.
JOURNALED_BYTES = 17_000


def overflow_pages(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM dbstat WHERE name = 'raw_batches' AND pagetype = 'overflow'"
        ).fetchone()
    return int(count)


def page_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def test_a_new_file_keeps_a_journaled_batch_in_one_page(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    storage = open_sqlite(path)
    payload = bytes(range(256)) * (JOURNALED_BYTES // 256)
    storage.windows.ingest([batch(b"a", window(0), ["a0"], payload=payload)], now_ms=0)
    storage.close()
    assert page_size(path) == PAGE_SIZE
    assert overflow_pages(path) == 0
    again = open_sqlite(path)
    (stored,) = again.windows.pending_batches()
    assert bytes(stored.payload) == payload
    again.close()


def test_a_file_with_smaller_pages_keeps_them_and_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("VACUUM")
    storage = open_sqlite(path)
    payload = b"\x01" * JOURNALED_BYTES
    storage.windows.ingest([batch(b"a", window(0), ["a0"], payload=payload)], now_ms=0)
    storage.close()
    assert page_size(path) == 4096
    assert overflow_pages(path) > 0
    again = open_sqlite(path)
    (stored,) = again.windows.pending_batches()
    assert bytes(stored.payload) == payload
    assert again.windows.ingest([batch(b"a", window(0), ["a0"])], now_ms=1).stored == [None]
    again.close()

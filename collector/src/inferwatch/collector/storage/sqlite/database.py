"""One SQLite file as the stores share it: WAL mode, one writer under a lock, a reader per thread.

Durability: ``durability="full"`` runs ``synchronous=FULL``, so a committed transaction (the
ingest worker's group commit) is on disk before the collector answers 200 and survives power
loss; ``"normal"`` skips that fsync, surviving a process crash but possibly losing the last
commits on power loss, for more throughput on slow disks.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from inferwatch.collector.window.store import StorageUnavailable

# Rows per IN (...) list: far below SQLite's variable limit, large enough to be few queries.
CHUNK = 5000
# The page size of a new database file (an existing one keeps its own: WAL mode fixes it). A
# journaled batch (raw_batches.payload, about 17 KB for 100 rows x 20 floats) then fits in one
# page, where 4 KiB pages spread it over a chain of overflow pages that every insert writes,
# the checkpoint's DELETE walks page by page to free, and the WAL copy writes again: about 1 us
# of the collector's CPU a row (bench/notes/collector.md).
PAGE_SIZE = 65536
# How long a statement waits for another process's write lock before "database is locked"
# (answered 503 with Retry-After).
BUSY_TIMEOUT_MS = 10_000


class Database:
    """The file's connections. ``transaction`` is the one way to write."""

    def __init__(self, path: str | Path, *, durability: str = "full") -> None:
        self.path = str(path)
        self._synchronous = "FULL" if durability == "full" else "NORMAL"
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        # Held while the WAL is copied: a close must not free the connection under it (a
        # cancelled checkpoint task leaves its thread running while the app shuts down).
        self._wal_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer = self._connect()
        # Copying the WAL into the database file would otherwise fall on the commit that
        # crosses 1000 pages, adding its writes and fsync to what acknowledged requests wait
        # for; ``checkpoint_wal`` does it instead, from another connection.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Before WAL mode, which otherwise creates the file with the default page size.
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error:
            conn.close()  # a file that is not a database: nothing is left open on it
            raise
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def reader(self) -> sqlite3.Connection:
        """This thread's connection for reading (outside any transaction)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """``with database.transaction() as conn``: the writer inside BEGIN IMMEDIATE ... COMMIT
        (ROLLBACK on an exception), one at a time. Inside a ``together`` block of this thread:
        a savepoint of its transaction."""
        if getattr(self._local, "together", False):
            return self._savepoint()
        return Transaction(self._writer, self._write_lock)

    @contextmanager
    def together(self) -> Iterator[None]:
        """Every ``transaction`` of this thread inside the block is one transaction, committed
        when the block ends (rolled back on an exception). Reads through ``reader`` do not see
        its writes before then."""
        if getattr(self._local, "together", False):
            with self._savepoint():
                yield
            return
        with self.transaction():
            self._local.together = True
            try:
                yield
            finally:
                self._local.together = False

    @contextmanager
    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        conn = self._writer
        conn.execute("SAVEPOINT nested")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO nested")
            conn.execute("RELEASE nested")
            raise
        conn.execute("RELEASE nested")

    def checkpoint_wal(self) -> None:
        """Copy the WAL into the database file. PASSIVE: commits go on meanwhile."""
        with self._wal_lock:
            self.reader().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        """Close every connection, once the write and WAL copy under way are done."""
        with self._write_lock, self._wal_lock, self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


class Transaction:
    """``with`` block: the writer connection inside BEGIN IMMEDIATE ... COMMIT, under the lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except sqlite3.Error:
            # A COMMIT that fails (disk full) can leave the transaction open, and every later
            # BEGIN would then fail: end it, so that writes succeed again once the cause is gone.
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        finally:
            self._lock.release()


# Errors of the database file rather than of the values written: the disk is full, the file is
# read-only, locked by another process, or unreadable. The same write may succeed later.
_UNAVAILABLE = (sqlite3.OperationalError, sqlite3.InternalError)


@contextmanager
def unavailable_on_database_errors() -> Iterator[None]:
    """Raise StorageUnavailable for the errors of the file (and plain DatabaseError: a file
    that is not a database, or is corrupt), leaving the rest (a value SQLite cannot bind, a
    constraint) to propagate as they are."""
    try:
        yield
    except sqlite3.Error as exc:
        if isinstance(exc, _UNAVAILABLE) or type(exc) is sqlite3.DatabaseError:
            raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise


_TRACE_ID_LENGTH = struct.Struct(">I")


def dedupe_key(trace_id: bytes, span_id: bytes) -> bytes:
    """A span's key in seen_spans (schema 8): the trace id's length, then both ids, so that no
    two (trace id, span id) pairs share a key, whatever their lengths."""
    return _TRACE_ID_LENGTH.pack(len(trace_id)) + trace_id + span_id


def marks(n: int) -> str:
    """``?,?,...`` for ``n`` parameters."""
    return ",".join("?" * n)

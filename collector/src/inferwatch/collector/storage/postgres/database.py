"""One PostgreSQL database as the stores share it: a pool of psycopg connections.

Durability: PostgreSQL's own (``synchronous_commit = on`` unless the server says otherwise), so a
committed transaction (the ingest worker's group commit) is on the server's disk before the
collector answers 200. ``durability="normal"`` turns ``synchronous_commit`` off for the
collector's sessions: a server crash may then lose the last commits, never corrupt the database.

Text: PostgreSQL's text holds no NUL character, which a model name or a label may hold. Every
string goes through ``_NulSafeDumper`` and comes back through ``_NulSafeLoader``, which write a
NUL as U+FFFE U+0001 and a U+FFFE (a noncharacter) as U+FFFE U+0002, so that any Python string
round-trips and compares equal to itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
from psycopg.adapt import Buffer
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown, TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from inferwatch.collector.settings import ConfigError
from inferwatch.collector.window.store import StorageUnavailable

# Seconds a caller waits for a free connection before the database counts as unavailable.
_POOL_TIMEOUT_S = 10.0
# Seconds to reach the server on start before refusing to start.
_CONNECT_TIMEOUT_S = 10
_MAX_CONNECTIONS = 8

# The transaction of the ``together`` block this thread is in, if any.
_TOGETHER: ContextVar[psycopg.Connection[Any] | None] = ContextVar("together", default=None)

_ESCAPE = "\ufffe"
_ESCAPED_NUL = _ESCAPE + "\x01"
_ESCAPED_ESCAPE = _ESCAPE + "\x02"


def _escaped(text: str) -> str:
    if "\0" in text or _ESCAPE in text:
        return text.replace(_ESCAPE, _ESCAPED_ESCAPE).replace("\0", _ESCAPED_NUL)
    return text


class _NulSafeDumper(StrDumperUnknown):
    """A Python string as PostgreSQL text can hold it (see the module's docstring)."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(_escaped(obj))


class _NulSafeBinaryDumper(StrBinaryDumper):
    """The same in binary format (``%b``, which arrays of many rows go as)."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(_escaped(obj))


class _NulSafeLoader(TextLoader):
    def load(self, data: Buffer) -> str:
        loaded = super().load(data)
        # Bytes only from a SQL_ASCII database, which says nothing of its encoding.
        text = loaded.decode("utf-8", "replace") if isinstance(loaded, bytes) else loaded
        if _ESCAPE in text:
            text = text.replace(_ESCAPED_NUL, "\0").replace(_ESCAPED_ESCAPE, _ESCAPE)
        return text


def where(url: str) -> str:
    """The server and database a URL names, for messages: never its password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "the PostgreSQL database of the db URL"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or 5432
    return f"PostgreSQL database {parts.get('dbname') or parts.get('user') or '?'} at {host}:{port}"


class Database:
    """The pool. ``transaction`` and ``reader`` are the ways in; both raise StorageUnavailable
    when the server cannot be reached or refuses for now."""

    def __init__(self, url: str, *, durability: str = "full") -> None:
        self.url = url
        self.name = where(url)
        self._durability = durability
        self._closed = threading.Event()
        try:
            # Once directly, to refuse at once, saying why, a server or database not there.
            psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(
                f"cannot connect to the {self.name} ({reason}); check that the server runs, "
                "the URL's host, port, user and database, and that the database exists"
            ) from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=_MAX_CONNECTIONS,
            kwargs={"connect_timeout": _CONNECT_TIMEOUT_S},
            configure=self._configure,
            timeout=_POOL_TIMEOUT_S,
            open=False,
            name="inferwatch",
        )
        try:
            self._pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S)
        except PoolTimeout as exc:
            self._pool.close()
            raise ConfigError(
                f"cannot connect to the {self.name} within {_CONNECT_TIMEOUT_S} s"
            ) from exc

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        # Text last: it stays the one ``%s`` takes.
        conn.adapters.register_dumper(str, _NulSafeBinaryDumper)
        conn.adapters.register_dumper(str, _NulSafeDumper)
        for oid_name in ("text", "varchar", "bpchar", "name"):
            conn.adapters.register_loader(oid_name, _NulSafeLoader)
        # Short statements all: compiling one costs more than it saves (seconds for a label
        # join against a large index, bench_postgres).
        conn.execute("SET jit = off")
        if self._durability != "full":
            conn.execute("SET synchronous_commit = off")
        conn.commit()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """``with database.transaction() as conn``: one transaction, committed when the block
        ends (rolled back on an exception); the commit is durable when the block returns.
        Inside a ``together`` block: a savepoint of its transaction."""
        outer = _TOGETHER.get()
        if outer is not None:
            with _unavailable_on_server_errors(), outer.transaction():
                yield outer
            return
        with _unavailable_on_server_errors(), self._pool.connection() as conn:
            yield conn
            # Not left to the pool's block, which lets a connection the server ended go without
            # a word, as if committed, when the block caught the failed statement's error.
            conn.commit()

    @contextmanager
    def reader(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for reads; each block is one transaction, hence one snapshot of what
        other transactions committed (statement by statement: READ COMMITTED). Inside a
        ``together`` block: its transaction, which sees the block's own writes."""
        outer = _TOGETHER.get()
        if outer is not None:
            with _unavailable_on_server_errors(), outer.transaction():
                yield outer
            return
        with _unavailable_on_server_errors(), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def together(
        self, begin: Callable[[psycopg.Connection[Any]], None], idle_timeout_s: float
    ) -> Iterator[None]:
        """Every ``transaction`` and ``reader`` of this thread inside the block is one
        transaction, begun by ``begin(conn)`` and committed when the block ends. The server
        ends the session should the transaction wait ``idle_timeout_s`` between statements (a
        collector paused mid-block), so that its locks never outlive it by more. Inside
        another ``together`` block: a savepoint of its transaction, ``begin`` not called."""
        outer = _TOGETHER.get()
        if outer is not None:
            with _unavailable_on_server_errors(), outer.transaction():
                yield
            return
        with _unavailable_on_server_errors(), self._pool.connection() as conn:
            conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
                (f"{int(idle_timeout_s * 1000)}ms",),
            )
            begin(conn)
            token = _TOGETHER.set(conn)
            try:
                yield
            finally:
                _TOGETHER.reset(token)
            # Raises when the server ended the session (a collector paused mid-block), even if
            # the block caught the error of its statement (the keeper's alerting step does).
            conn.commit()

    @contextmanager
    def snapshot(self) -> Iterator[psycopg.Connection[Any]]:
        """A read-only REPEATABLE READ transaction: every statement sees the same snapshot."""
        with _unavailable_on_server_errors(), self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()


# SQLSTATE classes of failures that pass: connection exceptions (08), insufficient resources
# (53: disk full, out of memory, too many connections), operator intervention (57: the server
# shutting down, a cancelled query), system errors (58), a serialization failure or deadlock (40),
# a lock not obtained in time (55P03), a session ended idle in its transaction (25P03).
_PASSING_CLASSES = ("08", "53", "57", "58", "40")


@contextmanager
def _unavailable_on_server_errors() -> Iterator[None]:
    """StorageUnavailable for the failures of the server rather than of the values sent."""
    try:
        yield
    except PoolTimeout as exc:
        raise StorageUnavailable(f"no database connection free or reachable: {exc}") from exc
    except psycopg.Error as exc:
        state = exc.sqlstate or ""
        if (
            (isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not state)
            or state[:2] in _PASSING_CLASSES
            or state in ("55P03", "25P03")
        ):
            raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise

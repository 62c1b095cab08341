"""The PostgreSQL server tests use: the local one on 127.0.0.1:5432 (trust auth), a database of
their own made for a run and dropped after it, and a fresh schema per test within it.

``INFERWATCH_TEST_POSTGRES`` may name another server's maintenance database (a
``postgresql://`` URL); otherwise the users ``postgres`` and ``root`` are tried.
"""

from __future__ import annotations

import itertools
import os
import secrets
from urllib.parse import quote

import psycopg
from psycopg import sql

_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://root@127.0.0.1:5432/postgres",
)


def admin_url() -> tuple[str | None, str]:
    """A URL that reaches the server as a user who may create databases, or None and why not."""
    override = os.environ.get("INFERWATCH_TEST_POSTGRES")
    candidates = (override,) if override else _CANDIDATES
    failures: list[str] = []
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return url, ""
        except psycopg.Error as exc:
            failures.append(f"{url}: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}")
    return None, "; ".join(failures)


def with_database(url: str, dbname: str) -> str:
    """``url`` with its database path replaced by ``dbname`` (no query kept)."""
    base = url.split("?", 1)[0]
    return base.rsplit("/", 1)[0] + "/" + dbname


def with_schema(url: str, schema: str) -> str:
    """``url`` whose sessions create and read tables in ``schema`` (search_path)."""
    return f"{url}?options={quote(f'-csearch_path={schema}')}"


class TemporaryDatabase:
    """A database of this run's own (``inferwatch_test_<random>``), dropped by ``drop``."""

    def __init__(self, admin: str) -> None:
        self._admin = admin
        self.name = f"inferwatch_test_{secrets.token_hex(6)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.url = with_database(admin, self.name)
        self._schemas = itertools.count(1)

    def new_schema(self) -> str:
        """A URL whose tables live in a new empty schema of this database."""
        schema = f"t{next(self._schemas)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        return with_schema(self.url, schema)

    def drop(self) -> None:
        with psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )

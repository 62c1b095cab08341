"""The PostgreSQL schema as numbered migrations, run when a collector starts.

``migrations/NNNN_name.sql`` takes a database from schema NNNN - 1 to NNNN; the first, 0001,
creates the tables. The version is the one row of ``inferwatch_schema``. Each step runs in one
transaction with the version it leaves, under an advisory lock, so replicas starting together
migrate once and a failed step leaves the database as it was. A database of a newer release is
refused, as is a schema that holds other tables but no version.

The tables go in the connection's current schema (the first of ``search_path``), so that one
database can hold several collectors' data: ``?options=-csearch_path%3Dname`` in the URL.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import psycopg

from inferwatch.collector.settings import ConfigError
from inferwatch.collector.storage.postgres.database import Database

# pg_advisory_xact_lock(MIGRATION_LOCK, hashtext(current_schema())): one migration at a time.
MIGRATION_LOCK = 0x1F3A0001


def steps() -> dict[int, str]:
    """Each step's SQL by the schema version it makes."""
    folder = files(__package__).joinpath("migrations")
    return {
        int(entry.name[:4]): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    }


SCHEMA_VERSION = max(steps())


def migrate(database: Database) -> None:
    """Bring the database to ``SCHEMA_VERSION``; ConfigError, leaving it as it was, if it
    cannot."""
    sql = steps()
    while True:
        with database.transaction() as conn:
            (schema,) = _one(conn, "SELECT current_schema()")
            if schema is None:
                raise ConfigError(
                    f"the {database.name} has no schema to create tables in (search_path "
                    "names none that exists); create it or fix the URL's options"
                )
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))",
                (MIGRATION_LOCK,),
            )
            version = _version(conn)
            if version == SCHEMA_VERSION:
                return
            if version is None:
                (tables,) = _one(
                    conn,
                    "SELECT COUNT(*) FROM information_schema.tables "
                    "WHERE table_schema = current_schema()",
                )
                if tables:
                    raise ConfigError(
                        f"the schema {schema} of the {database.name} holds {tables} tables but "
                        "no inferwatch storage schema: point db at an empty database or schema"
                    )
                version = 0
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"the schema {schema} of the {database.name} has storage schema {version}, "
                    f"written by a newer inferwatch release; this one reads PostgreSQL schema "
                    f"{SCHEMA_VERSION}: upgrade inferwatch, or point db at another database"
                )
            step = version + 1
            try:
                conn.execute(sql[step])
            except psycopg.Error as exc:
                raise ConfigError(
                    f"the {database.name} could not be brought from storage schema {version} "
                    f"to {step} ({exc}); it is unchanged"
                ) from exc
            if version == 0:
                conn.execute("CREATE TABLE inferwatch_schema (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO inferwatch_schema (version) VALUES (%s)", (step,))
            else:
                conn.execute("UPDATE inferwatch_schema SET version = %s", (step,))


def _version(conn: psycopg.Connection[Any]) -> int | None:
    (exists,) = _one(conn, "SELECT to_regclass('inferwatch_schema') IS NOT NULL")
    if not exists:
        return None
    row = conn.execute("SELECT version FROM inferwatch_schema").fetchone()
    return None if row is None else int(row[0])


def _one(conn: psycopg.Connection[Any], query: str) -> tuple[object, ...]:
    row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)

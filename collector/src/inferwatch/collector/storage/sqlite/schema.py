"""The schema of the SQLite file, as numbered migrations: from the oldest storage schema this
release brings forward to the one it reads.

``migrations/NNNN_name.sql`` takes a file from schema NNNN - 1 to NNNN; the first, 0002, creates
schema 2's tables. A new file runs them all; an older one is brought forward one step at a time,
each step with the version it leaves (``PRAGMA user_version``) in one transaction, so that a
crash leaves the file at a version it goes on from. A file newer than this release, or older
than its oldest step, is refused. Steps that rewrite data call the ``iw_*`` SQL functions below;
each writes the format of the schema its step makes, so a released one never changes (a new
format is a new step).
"""

from __future__ import annotations

import json
import re
import sqlite3
import struct
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

from inferwatch.collector.settings import ConfigError
from inferwatch.collector.storage.sqlite.database import Database


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
    """Bring the file to ``SCHEMA_VERSION``; ConfigError, leaving it as it was, if it cannot."""
    sql = steps()
    oldest = min(sql)
    while True:
        with database.transaction() as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version == SCHEMA_VERSION:
                return
            (tables,) = conn.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()
            if version == 0 and not tables:
                step = oldest
            elif oldest <= version < SCHEMA_VERSION:
                step = version + 1
            else:
                raise ConfigError(_refusal(database.path, version, oldest))
            _define_functions(conn)
            try:
                for statement in _statements(sql[step]):
                    conn.execute(statement)
            except sqlite3.Error as exc:
                raise ConfigError(
                    f"the database {database.path} could not be brought from storage schema "
                    f"{version} to {step} ({exc}); it is unchanged"
                ) from exc
            conn.execute(f"PRAGMA user_version = {step}")


def _refusal(path: str, version: int, oldest: int) -> str:
    if version > SCHEMA_VERSION:
        return (
            f"the database {path} has storage schema {version}, written by a newer inferwatch "
            f"release; this one reads schema {SCHEMA_VERSION} (and brings schemas {oldest} to "
            f"{SCHEMA_VERSION - 1} forward): upgrade inferwatch, or point db at another file"
        )
    return (
        f"the database {path} has storage schema {version}, from a pre-release of inferwatch; "
        f"this release brings schemas {oldest} to {SCHEMA_VERSION - 1} forward, not that one: "
        "point db at a new file"
    )


def _statements(script: str) -> Iterator[str]:
    """The script's statements one by one (``execute`` runs one, inside our transaction)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if any(line.strip() and not line.lstrip().startswith("--") for line in statement.split("\n")):
        raise ValueError(f"a migration ends in an incomplete statement: {statement!r}")


def _define_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("iw_uuid_key", 1, _uuid_key, deterministic=True)
    conn.create_function("iw_journal_iwj2", 1, _journal_iwj2, deterministic=True)
    conn.create_function("iw_dedupe_key_8", 1, _dedupe_key_8, deterministic=True)
    for name, rewrite in (
        ("iw_results_with_severity", _results_with_severity),
        ("iw_evidence_with_severity", _evidence_with_severity),
        ("iw_history_with_severity", _history_with_severity),
    ):
        conn.create_function(name, 1, rewrite, deterministic=True)


# -- schema 3 ------------------------------------------------------------------------------------

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LENGTH = struct.Struct("<I")


def _uuid_key(prediction_id: str) -> bytes | str:
    """An id's key in schema 3: a canonical lower-case UUID's 16 bytes, else its text."""
    if _CANONICAL_UUID.fullmatch(prediction_id):
        return bytes.fromhex(prediction_id.replace("-", ""))
    return prediction_id


def _journal_iwj2(payload: bytes) -> bytes:
    """A journaled batch laid out as IWJ2 (schema 3) from IWJ1 (schema 2).

    Both are a signature and length-prefixed parts. IWJ1: JSON metadata (with the ids), input
    frame, output frame. IWJ2: the metadata without the ids, the ids end to end (UTF-8, lone
    surrogates kept), each id's length in characters (uint32), input frame, output frame.
    Anything else is left as it is: schema 2 could not replay it either.
    """
    if payload[:4] != b"IWJ1":
        return payload
    parts: list[bytes] = []
    offset = 4
    for _ in range(3):
        (length,) = _LENGTH.unpack_from(payload, offset)
        offset += _LENGTH.size
        parts.append(payload[offset : offset + length])
        offset += length
    meta = json.loads(parts[0])
    ids: list[str] = meta.pop("ids")
    rewritten = (
        json.dumps(meta, separators=(",", ":")).encode(),
        "".join(ids).encode("utf-8", "surrogatepass"),
        struct.pack(f"<{len(ids)}I", *map(len, ids)),
        parts[1],
        parts[2],
    )
    return b"IWJ2" + b"".join(_LENGTH.pack(len(part)) + part for part in rewritten)


# -- schema 8 ------------------------------------------------------------------------------------

_OTLP_SPAN_ID_BYTES = 8
_TRACE_ID_LENGTH = struct.Struct(">I")


def _dedupe_key_8(key: bytes) -> bytes:
    """An earlier dedupe key (trace id + span id) as schema 8 writes it: the trace id's length,
    then the ids; the span id taken as the key's last 8 bytes."""
    trace_length = max(0, len(key) - _OTLP_SPAN_ID_BYTES)
    return _TRACE_ID_LENGTH.pack(trace_length) + key


# -- schema 5 ------------------------------------------------------------------------------------


def _results_with_severity(results: str) -> str:
    return json.dumps([_with_severity(row) for row in json.loads(results)])


def _evidence_with_severity(evidence: str) -> str:
    return json.dumps([_evidence(item) for item in json.loads(evidence)])


def _history_with_severity(history: str) -> str:
    data = json.loads(history)
    for observation in data.get("observations", ()):
        observation["evidence"] = _evidence(observation["evidence"])
    return json.dumps(data)


def _evidence(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "result": _with_severity(item["result"])}


def _with_severity(row: dict[str, Any]) -> dict[str, Any]:
    """The result row with ``severity`` after its ``decision``: as it has it already (releases
    with the one result type store it), else by the rule above."""
    severity = row["severity"] if "severity" in row else _severity(row)
    rewritten: dict[str, Any] = {}
    for key, value in row.items():
        if key != "severity":
            rewritten[key] = value
        if key == "decision":
            rewritten["severity"] = severity
    rewritten.setdefault("severity", severity)
    return rewritten


def _severity(row: dict[str, Any]) -> str | None:
    decision = row.get("decision")
    if decision == "warning":
        return "warning"
    if decision == "alert":
        details = row.get("details")
        level = details.get("level") if isinstance(details, dict) else None
        return "critical" if level == "critical" else "warning"
    return None

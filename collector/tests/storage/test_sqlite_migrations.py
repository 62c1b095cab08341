"""The SQLite backend's numbered migrations, on files that the releases of schemas 2, 3 and 4
wrote (fixtures/, made by fixtures/make_fixture.py): every row comes through, rewritten only
where a step says so, into exactly the schema of a new file. Newer and pre-release files are
refused, and a step that fails leaves the file as it was."""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from inferwatch.collector.ingest.journal import decode_batch
from inferwatch.collector.settings import ConfigError
from inferwatch.collector.storage.sqlite import SCHEMA_VERSION, open_sqlite
from inferwatch.collector.storage.sqlite.schema import steps

from .helpers import batch, migrated, window

FIXTURES = Path(__file__).parent / "fixtures"
# Files written by the releases of each older schema (fixtures/schema4-severity.db: by the one
# that stores results with their severity, still schema 4).
SCHEMAS = {"schema2": 2, "schema3": 3, "schema4": 4, "schema4-severity": 4}
FIXTURE_NAMES = sorted(SCHEMAS)
# Columns that a step rewrites; every other value must come through as it was.
REWRITTEN = {
    "windows": "results",
    "alerts": "evidence",
    "alert_checks": "history",
    "raw_batches": "payload",
    "prediction_ids": "id_key",
    "labels": "label_ms",
    "seen_spans": "key",
}


def fixture(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.db"
    shutil.copy(FIXTURES / f"{name}.db", path)
    return path


def schema_of(path: Path) -> dict[str, Any]:
    """Each table's columns, indexes and rowid-ness, as SQLite reports them."""
    conn = sqlite3.connect(path)
    tables: dict[str, Any] = {}
    names = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    for name, sql in names:
        indexes = [
            (index, unique, partial, conn.execute(f"PRAGMA index_xinfo('{index}')").fetchall())
            for _, index, unique, _, partial in conn.execute(f"PRAGMA index_list('{name}')")
        ]
        tables[name] = (
            conn.execute(f"PRAGMA table_xinfo('{name}')").fetchall(),
            sorted(indexes),
            sql.rstrip().upper().endswith("WITHOUT ROWID"),
        )
    conn.close()
    return tables


def rows_of(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rows = {name: sorted(conn.execute(f"SELECT * FROM {name}"), key=repr) for name in names}
    conn.close()
    return rows


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    return int(version)


def test_the_steps_are_numbered_from_schema_2_without_gaps() -> None:
    assert sorted(steps()) == list(range(2, SCHEMA_VERSION + 1))
    assert SCHEMA_VERSION == 9


def test_a_new_file_runs_every_step(tmp_path: Path) -> None:
    open_sqlite(tmp_path / "new.db").close()
    assert user_version(tmp_path / "new.db") == SCHEMA_VERSION
    open_sqlite(tmp_path / "new.db").close()  # at its version: nothing to do
    assert user_version(tmp_path / "new.db") == SCHEMA_VERSION


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_an_older_file_gets_the_schema_of_a_new_one(tmp_path: Path, name: str) -> None:
    path = fixture(tmp_path, name)
    assert user_version(path) == SCHEMAS[name]
    open_sqlite(path).close()
    open_sqlite(tmp_path / "new.db").close()
    assert user_version(path) == SCHEMA_VERSION
    assert schema_of(path) == schema_of(tmp_path / "new.db")


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_row_comes_through_rewritten_only_where_a_step_says(
    tmp_path: Path, name: str
) -> None:
    path = fixture(tmp_path, name)
    schema = SCHEMAS[name]
    before = rows_of(path)
    open_sqlite(path).close()
    after = rows_of(path)
    assert after.pop("prediction_ranges", []) == before.pop("prediction_ranges", [])
    assert after.pop("quarantined_batches") == []  # new in schema 6
    assert after.pop("alert_outbox") == []  # new in schema 9
    assert set(after) == set(before)
    # Schema 7 counts runs of failures per check, not per feature ("univariate_drift:x0").
    before["alert_checks"] = [r for r in before["alert_checks"] if ":" not in r[2]]
    for table, old_rows in before.items():
        assert len(after[table]) == len(old_rows), table
        if table not in REWRITTEN:
            assert after[table] == old_rows, table
    # Labels keep their prediction's place and value (schemas 2 and 3 also keyed them by id).
    assert sorted(row[-6:] for row in after["labels"]) == sorted(
        row[-6:] for row in before["labels"]
    )
    # Ids that are canonical UUIDs are keyed by their bytes from schema 3 on.
    old_keys = {
        (model_key, _key(key) if schema == 2 else key, batch, row)
        for model_key, key, batch, row in before["prediction_ids"]
    }
    assert set(after["prediction_ids"]) == old_keys
    if schema == 2:
        assert any(isinstance(key, bytes) for _, key, _, _ in after["prediction_ids"])


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_result_row_has_its_severity_and_nothing_else_changes(
    tmp_path: Path, name: str
) -> None:
    path = fixture(tmp_path, name)
    query = {
        "windows": "SELECT id, results FROM windows WHERE results IS NOT NULL ORDER BY id",
        "alerts": "SELECT id, evidence FROM alerts ORDER BY id",
        "alert_checks": "SELECT model || version || check_name, history FROM alert_checks "
        "ORDER BY 1",
    }

    def stored() -> dict[str, list[tuple[Any, Any]]]:
        conn = sqlite3.connect(path)
        found = {
            table: [(k, json.loads(v)) for k, v in conn.execute(sql)]
            for table, sql in query.items()
        }
        conn.close()
        return found

    before = stored()
    open_sqlite(path).close()
    after = stored()
    before["alert_checks"] = [(k, v) for k, v in before["alert_checks"] if ":" not in k]
    severities = set()
    for (wid, old), (same, new) in zip(before["windows"], after["windows"], strict=True):
        assert wid == same and new == [migrated(row) for row in old]
        severities.update((row["decision"], row["severity"]) for row in new)
        # The severity a row gains follows its decision.
        assert all(list(row)[list(row).index("decision") + 1] == "severity" for row in new)
    assert {("ok", None), ("not_enough_data", None)} <= severities
    if SCHEMAS[name] == 2:  # error_rate alerts, the critical one by the alert policy's bound
        assert ("alert", "warning") in severities
    else:  # the releases with threshold levels rated error_rate by them
        assert {("warning", "warning"), ("alert", "critical")} <= severities
    for (aid, old), (same, new) in zip(before["alerts"], after["alerts"], strict=True):
        assert aid == same
        assert new == [{**e, "result": migrated(e["result"])} for e in old]
    for (check, old), (same, new) in zip(
        before["alert_checks"], after["alert_checks"], strict=True
    ):
        assert check == same
        for was, now in zip(old["observations"], new["observations"], strict=True):
            assert now == {
                **was,
                "evidence": {**was["evidence"], "result": migrated(was["evidence"]["result"])},
            }


def _key(text: str) -> bytes | str:
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return text
    return parsed.bytes if str(parsed) == text else text


def test_the_journal_of_schema_2_is_laid_out_anew(tmp_path: Path) -> None:
    path = fixture(tmp_path, "schema2")
    conn = sqlite3.connect(path)
    old = {
        seq: bytes(payload) for seq, payload in conn.execute("SELECT seq, payload FROM raw_batches")
    }
    conn.close()
    assert old and all(payload.startswith(b"IWJ1") for payload in old.values())
    storage = open_sqlite(path)
    replayed = {
        stored.seq: decode_batch(stored.payload) for stored in storage.windows.pending_batches()
    }
    storage.close()
    assert set(replayed) == set(old)
    for seq, payload in old.items():
        meta_length = int.from_bytes(payload[4:8], "little")
        meta = json.loads(payload[8 : 8 + meta_length])
        batch = replayed[seq]
        assert list(batch.ids) == meta["ids"] and batch.model == meta["model"]
        assert batch.span_id.hex() == meta["span_id"] and batch.rows == len(meta["ids"])


def test_a_row_stored_with_its_severity_keeps_it(tmp_path: Path) -> None:
    path = fixture(tmp_path, "schema4")
    conn = sqlite3.connect(path)
    (results,) = conn.execute("SELECT results FROM windows WHERE id = 1").fetchone()
    rows = json.loads(results)
    # As a release with the one result type stores it: the severity, no details.level.
    rows[0] = {**rows[0], "decision": "alert", "severity": "critical", "details": {}}
    conn.execute("UPDATE windows SET results = ? WHERE id = 1", (json.dumps(rows),))
    conn.commit()
    conn.close()
    storage = open_sqlite(path)
    record = storage.windows.get("credit", 1)
    storage.close()
    assert record is not None and record.results is not None
    assert [row.severity for row in record.results][:1] == ["critical"]


def _set_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_a_file_newer_than_this_release_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    open_sqlite(path).close()
    _set_version(path, SCHEMA_VERSION + 1)
    before = path.read_bytes()
    with pytest.raises(
        ConfigError, match=rf"storage schema {SCHEMA_VERSION + 1}, written by a newer inferwatch"
    ) as refused:
        open_sqlite(path)
    assert f"this one reads schema {SCHEMA_VERSION}" in str(refused.value)
    assert "upgrade inferwatch" in str(refused.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("version", [0, 1])
def test_a_file_from_before_numbered_schemas_is_refused(tmp_path: Path, version: int) -> None:
    path = tmp_path / "early.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE windows (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    _set_version(path, version)
    with pytest.raises(ConfigError, match=f"storage schema {version}, from a pre-release"):
        open_sqlite(path)
    assert user_version(path) == version


def test_a_step_that_fails_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    path = fixture(tmp_path, "schema4")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE windows SET results = 'not json' WHERE id = 1")
    conn.commit()
    conn.close()
    before = rows_of(path)
    with pytest.raises(ConfigError, match="could not be brought from storage schema 4 to 5"):
        open_sqlite(path)
    assert user_version(path) == 4
    assert rows_of(path) == before


def test_open_per_feature_alerts_fold_into_one_alert_per_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema 5 file with a release's per-feature alerts: each check keeps one open alert,
    its features' rows as findings, and the old ones stay listed, resolved as merged."""
    path = fixture(tmp_path, "schema4")
    with monkeypatch.context() as schema5:
        schema5.setattr("inferwatch.collector.storage.sqlite.schema.SCHEMA_VERSION", 5)
        open_sqlite(path).close()
    assert user_version(path) == 5
    conn = sqlite3.connect(path)
    (evidence,) = conn.execute("SELECT evidence FROM alerts WHERE state = 'open'").fetchone()

    def feature_evidence(feature: str, severity: str) -> str:
        items = json.loads(evidence)
        items[-1]["result"] = {**items[-1]["result"], "feature": feature, "severity": severity}
        return json.dumps(items)

    old = [  # (check, state, severity): drift with its own alert, schema without one
        ("univariate_drift", "open", "warning"),
        ("univariate_drift:x0", "open", "critical"),
        ("univariate_drift:x1", "open", "warning"),
        ("univariate_drift:color", "resolved", "warning"),
        ("schema:color", "open", "warning"),
        ("schema:x9", "open", "warning"),
    ]
    for check, state, severity in old:
        feature = check.partition(":")[2] or None
        conn.execute(
            "INSERT INTO alerts (model, version, check_name, severity, state, opened_ms, "
            "resolved_ms, updated_ms, message, window_id, last_window_id, evidence) "
            "VALUES ('m', '1', ?, ?, ?, 1, NULL, 2, 'old', 1, 1, ?)",
            (check, severity, state, feature_evidence(feature or "", severity)),
        )
    conn.commit()
    conn.close()
    storage = open_sqlite(path)
    alerts = storage.alerts.find("m")
    storage.close()
    assert user_version(path) == SCHEMA_VERSION
    shown = [(a.check, a.state, a.resolution, a.severity, a.features) for a in alerts]
    assert shown == [
        ("univariate_drift", "open", None, "critical", ("x0", "x1")),
        ("univariate_drift:x0", "resolved", "merged", "critical", ()),
        ("univariate_drift:x1", "resolved", "merged", "warning", ()),
        ("univariate_drift:color", "resolved", "passed", "warning", ()),
        ("schema", "open", None, "warning", ("color", "x9")),
        ("schema:x9", "resolved", "merged", "warning", ()),
    ]
    assert all(a.resolved_ms == 2 for a in alerts if a.resolution == "merged")


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_spans_stored_before_schema_8_are_still_caught_as_duplicates(
    tmp_path: Path, name: str
) -> None:
    path = fixture(tmp_path, name)
    conn = sqlite3.connect(path)
    old_keys = [bytes(key) for (key,) in conn.execute("SELECT key FROM seen_spans")]
    conn.close()
    assert old_keys and all(len(key) == 24 for key in old_keys)  # OTLP: 16 + 8 bytes
    storage = open_sqlite(path)
    retried = [batch(key[16:], window(0), ["r"], trace_id=key[:16]) for key in old_keys]
    # The same bytes cut elsewhere are other spans, stored as new.
    others = [batch(key[8:], window(0), ["o"], trace_id=key[:8]) for key in old_keys]
    outcome = storage.windows.ingest(retried + others, now_ms=1)
    storage.close()
    assert outcome.stored[: len(old_keys)] == [None] * len(old_keys)
    assert all(stored is not None for stored in outcome.stored[len(old_keys) :])

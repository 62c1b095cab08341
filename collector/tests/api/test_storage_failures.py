"""A database that fails for a while is answered 503 with Retry-After (which the SDK retries),
not 500; the same request succeeds once the database is back.

The failure is real: another connection holds the collector's SQLite file in an exclusive
transaction, so the collector's writer waits out its busy timeout and gets "database is locked".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from inferwatch.collector.storage.sqlite import database as sqlite_database
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import Frame, categorical, encode_frame, numeric

REFERENCE = "/v1/models/m/versions/1/reference"
LABELS = {"model": "m", "labels": [{"prediction_id": "p1", "label": "yes"}]}


@contextmanager
def locked(db: Path) -> Iterator[None]:
    """``db`` held by another writer until the block ends."""
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def frame_part(rows: int) -> bytes:
    rng = np.random.default_rng(0)
    frame = Frame(
        rows,
        (
            numeric("x", rng.normal(size=(rows, 1)), names=["x0"]),
            categorical("prediction", rng.choice(["no", "yes"], size=rows), role="output"),
        ),
    )
    return encode_frame(frame)


def assert_retryable(response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert "database is locked" in error and "retry after" in error, error


def test_locked_database_answers_503_with_retry_after(
    make_collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any bound on the wait shows the answer; a short one keeps the test short.
    monkeypatch.setattr(sqlite_database, "BUSY_TIMEOUT_MS", 500)
    collector = make_collector()
    db = tmp_path / "collector.db"
    part = frame_part(10)
    frame_headers = {"content-type": FRAME_TYPE}
    with collector.client() as client:
        upload = client.post(f"{REFERENCE}/uploads").json()["upload_id"]
        part_path = f"{REFERENCE}/uploads/{upload}/parts/0"
        with locked(db):
            assert_retryable(client.post("/v1/labels", json=LABELS))
            assert_retryable(client.put(part_path, content=part, headers=frame_headers))
        # Retried once the database is free, as the SDK retries a 503.
        labelled = client.post("/v1/labels", json=LABELS)
        assert labelled.status_code == 200 and labelled.json()["accepted"] == 1, labelled.text
        stored = client.put(part_path, content=part, headers=frame_headers)
        assert stored.status_code == 200 and stored.json() == {"rows": 10}, stored.text
        document = client.get("/openapi.json").json()
    # The document says so: every /v1 route may answer 503 with Retry-After.
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                assert "Retry-After" in operation["responses"]["503"]["headers"], (path, method)

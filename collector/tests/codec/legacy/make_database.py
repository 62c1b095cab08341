"""Remake today.sqlite: a database as the release before the container codec left it, with
window states checkpointed (IWS1, holding IWS1 summaries and IWR1 reservoirs), a reference
profile (IWP1) and batches still in the journal (IWJ2: the process was killed before it
checkpointed them), and database.json, what the collector showed before it was killed.

Run it with inferwatch-collector at commit 2785957 installed (see make_fixtures.py)::

    .venv/bin/python <this file> <this folder>
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np

import inferwatch
from inferwatch.collector.window.state import WindowState
from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import (
    T0,
    SpanSender,
    mixed_frames,
    start_collector_process,
    total_rows,
    windows,
)

MODEL, VERSION = "credit", "3"


def count(db: Path, table: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        (rows,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(rows)


def send(url: str, rng: np.random.Generator, starts: list[float], rows: int, tag: str) -> None:
    sender = SpanSender(url)
    for i, start in enumerate(starts):
        inputs, outputs = mixed_frames(rng, rows)
        ids = [f"{tag}{i}-{j}" for j in range(rows)]
        sender.send(MODEL, VERSION, int(start * 1e9), inputs, ids, outputs)
    sender.close()


def main(folder: Path) -> None:
    if WindowState().to_bytes()[:4] != b"IWS1":
        raise SystemExit("this is not the release before the codec: its blobs are not IWS1")
    rng = np.random.default_rng(5)
    work = Path(tempfile.mkdtemp())
    db, log = work / "today.sqlite", work / "collector.log"
    models = f'[models.{MODEL}]\nwindow = "60s"\n'
    often, never = work / "often.toml", work / "never.toml"
    often.write_text(f"[collector]\ncheckpoint_interval_seconds = 0.2\n{models}")
    never.write_text(f"[collector]\ncheckpoint_interval_seconds = 3600\n{models}")

    first = start_collector_process(f"sqlite:///{db}", often, log)
    reference, _ = mixed_frames(rng, 200)
    features = {name: values for name, values in reference.features().items()}
    colour = features.pop("color")
    assert not isinstance(colour, np.ndarray)
    inferwatch.set_reference(
        MODEL, VERSION, {**features, "color": colour.values()}, endpoint=first.url
    )
    send(first.url, rng, [T0 + i for i in range(4)], 10, "a")
    with httpx.Client(base_url=first.url, timeout=30) as client:
        wait_for(lambda: total_rows(client, MODEL) == 40, what="40 rows")
    wait_for(lambda: count(db, "raw_batches") == 0, what="a checkpoint")
    first.kill()

    second = start_collector_process(f"sqlite:///{db}", never, log)
    send(second.url, rng, [T0 + 5, T0 + 6] + [T0 + 60 + i for i in range(3)], 10, "b")
    with httpx.Client(base_url=second.url, timeout=30) as client:
        wait_for(lambda: total_rows(client, MODEL) == 90, what="90 rows")
        shown = [
            {key: window[key] for key in ("start", "end", "rows", "requests")}
            for window in windows(client, MODEL)
        ]
        summary = client.get(f"/v1/models/{MODEL}/versions/{VERSION}/reference").json()
    second.kill()
    pending = count(db, "raw_batches")
    assert pending == 5 and count(db, "window_states") == 1, pending

    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with sqlite3.connect(db) as connection:
        connection.execute("VACUUM")
    shutil.copy(db, folder / "today.sqlite")
    expected = {
        "windows": shown,
        "pending_batches": pending,
        "reference_rows": summary["rows"],
        "reference_summary_rows": summary["summary"]["rows"],
    }
    (folder / "database.json").write_text(json.dumps(expected, indent=1) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)

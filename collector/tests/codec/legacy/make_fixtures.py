"""Remake the blobs in this folder: one of each kind the collector stores, in the layouts written
before the container codec (IWS1 window states and summaries, IWR1 reservoirs, IWP1 profiles,
IWJ2 journaled batches), and expected.json, what each holds.

They must come from that release's own code, so run this with inferwatch-collector at commit
2785957 (the last one before the codec) installed, e.g.::

    git worktree add /tmp/before 2785957 && cd /tmp/before && make .venv/.installed
    .venv/bin/python <this file> <this folder>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from inferwatch.collector.codec.jsonsafe import json_safe
from inferwatch.collector.ingest.journal import encode_batch
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.window.reservoir import Reservoir
from inferwatch.collector.window.state import WindowState
from inferwatch.frame import Frame, categorical, numeric


def frames(rng: np.random.Generator, rows: int) -> tuple[Frame, Frame]:
    x = rng.normal(size=(rows, 2)).round(3)
    x[0, 1] = np.nan
    colour = rng.choice(["red", "green", "blue"], size=rows).tolist()
    inputs = Frame(rows, (numeric("x", x, names=["x0", "x1"]), categorical("colour", colour)))
    outputs = Frame(rows, (categorical("prediction", ["yes" if v > 0 else "no" for v in x[:, 0]]),))
    return inputs, outputs


def batch(rng: np.random.Generator, index: int, rows: int, **changes: Any) -> PredictionBatch:
    inputs, outputs = frames(rng, rows)
    fields: dict[str, Any] = {
        "model": "credit",
        "version": "3",
        "task": "classification",
        "trace_id": bytes([index]) * 16,
        "span_id": bytes([index]) * 8,
        "start_ns": 1_700_000_040_000_000_000 + index * 1_000_000,
        "end_ns": 1_700_000_040_000_000_000 + index * 1_000_000 + 4_000_000,
        "error": None,
        "ids": tuple(f"p{index}-{j}" for j in range(rows)),
        "inputs": inputs,
        "outputs": outputs,
    }
    fields.update(changes)
    return PredictionBatch(**fields)


def frame_values(frame: Frame) -> dict[str, Any]:
    return {
        name: values.values() if not isinstance(values, np.ndarray) else values.tolist()
        for name, values in frame.features().items()
    }


def main(folder: Path) -> None:
    if WindowState().to_bytes()[:4] != b"IWS1":
        raise SystemExit("this is not the release before the codec: its blobs are not IWS1")
    rng = np.random.default_rng(7)
    reference = [frames(rng, 40)[0], frames(rng, 20)[0]]
    profile = Profile.fit(reference, bins=4, reservoir=8, seed=3)

    state = WindowState(summary=profile.new_window(), reservoir=Reservoir(6, seed=5))
    batches = [
        batch(rng, 1, 5),
        batch(rng, 2, 4, error="ValueError", outputs=None),
        batch(rng, 3, 3, issues=("ml.output.frame: not a frame",), sample_rate=0.5),
    ]
    state.add(batches)
    reservoir = Reservoir(4, seed=9)
    for b in batches:
        reservoir.add(b.inputs, b.outputs, b.ids)

    journaled = batch(rng, 4, 3, ids=("019b76da-a800-7000-8000-0064cdab8924", "é€", ""))
    bare = PredictionBatch("m", "1", None, bytes(16), bytes(8), 0, 0, None, (), None, None)

    blobs = {
        "window_state.iws1": state.to_bytes(),
        "window_summary.iws1": state.summary.to_bytes(),
        "reservoir.iwr1": reservoir.to_bytes(),
        "profile.iwp1": profile.to_bytes(),
        "batch.iwj2": encode_batch(journaled),
        "bare_batch.iwj2": encode_batch(bare),
    }
    for name, data in blobs.items():
        (folder / name).write_bytes(data)
    expected = {
        "window_state": {**state.describe(), "reservoir_ids": list(state.reservoir.ids)},
        "window_summary": state.summary.to_dict(),
        "reservoir": {
            "capacity": reservoir.capacity,
            "seen": reservoir.seen,
            "ids": list(reservoir.ids),
            "rows": frame_values(reservoir.to_frame()),
        },
        "profile": {**profile.to_dict(), "reservoir_ids": list(profile.reservoir.ids)},
        "batch": {
            "ids": list(journaled.ids),
            "start_ns": journaled.start_ns,
            "inputs": frame_values(journaled.inputs) if journaled.inputs else None,
            "outputs": frame_values(journaled.outputs) if journaled.outputs else None,
        },
    }
    text = json.dumps(json_safe(expected), indent=1, sort_keys=True, ensure_ascii=False)
    (folder / "expected.json").write_text(text + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)

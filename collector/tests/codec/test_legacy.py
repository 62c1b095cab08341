"""Blobs written before the container envelope, by that release's own code (legacy/, remade by
legacy/make_fixtures.py and legacy/make_database.py), still open with what they held."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferwatch.collector.codec import (
    JOURNALED_BATCH,
    PROFILE,
    RESERVOIR,
    WINDOW_STATE,
    WINDOW_SUMMARY,
    ContainerError,
    json_safe,
)
from inferwatch.collector.ingest.journal import decode_batch, encode_batch
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.window.reservoir import Reservoir
from inferwatch.collector.window.state import WindowState
from inferwatch.collector.window.summaries import WindowSummary
from inferwatch.frame import Frame
from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import T0, RunningCollector, SpanSender, mixed_frames, windows

LEGACY = Path(__file__).parent / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())


def blob(name: str) -> bytes:
    return (LEGACY / name).read_bytes()


def as_json(value: Any) -> Any:
    """What ``value`` looks like in expected.json."""
    return json.loads(json.dumps(json_safe(value)))


def frame_values(frame: Frame | None) -> dict[str, Any] | None:
    if frame is None:
        return None
    return {
        name: values.tolist() if isinstance(values, np.ndarray) else values.values()
        for name, values in frame.features().items()
    }


def test_a_window_state_of_today_opens_as_version_1() -> None:
    data = blob("window_state.iws1")
    assert data[:4] == b"IWS1" and WINDOW_STATE.decode(data).version == 1
    state = WindowState.from_bytes(data)
    expected = dict(EXPECTED["window_state"])
    assert list(state.reservoir.ids) == expected.pop("reservoir_ids")
    assert as_json(state.describe()) == expected
    again = WindowState.from_bytes(state.to_bytes())  # written anew in the envelope
    assert state.to_bytes()[:4] == b"IWWS"
    assert as_json(again.describe()) == expected


def test_a_window_summary_of_today_opens_as_version_1() -> None:
    data = blob("window_summary.iws1")
    assert WINDOW_SUMMARY.decode(data).version == 1
    summary = WindowSummary.from_bytes(data)
    assert as_json(summary.to_dict()) == EXPECTED["window_summary"]
    assert as_json(WindowSummary.from_bytes(summary.to_bytes()).to_dict()) == as_json(
        summary.to_dict()
    )


def test_states_and_summaries_of_today_share_iws1_yet_are_told_apart() -> None:
    # The case: a summary given to WindowState.from_bytes asked numpy for 1.4 GB.
    with pytest.raises(ContainerError) as state:
        WindowState.from_bytes(blob("window_summary.iws1"))
    assert str(state.value) == "this is a window summary, not a window state"
    with pytest.raises(ContainerError) as summary:
        WindowSummary.from_bytes(blob("window_state.iws1"))
    assert str(summary.value) == "this is a window state, not a window summary"


def test_a_reservoir_of_today_opens_as_version_1() -> None:
    data = blob("reservoir.iwr1")
    assert RESERVOIR.decode(data).version == 1
    reservoir = Reservoir.from_bytes(data)
    expected = EXPECTED["reservoir"]
    assert (reservoir.capacity, reservoir.seen) == (expected["capacity"], expected["seen"])
    assert list(reservoir.ids) == expected["ids"]
    assert as_json(frame_values(reservoir.to_frame())) == expected["rows"]
    # The generator's state came along: both copies go on drawing the same rows.
    again = Reservoir.from_bytes(reservoir.to_bytes())
    more = mixed_frames(np.random.default_rng(0), 20)[0]
    for kept in (reservoir, again):
        kept.add(more, ids=[f"n{i}" for i in range(20)])
    assert reservoir.ids == again.ids


def test_a_profile_of_today_opens_as_version_1() -> None:
    data = blob("profile.iwp1")
    assert PROFILE.decode(data).version == 1
    profile = Profile.from_bytes(data)
    expected = dict(EXPECTED["profile"])
    assert list(profile.reservoir.ids) == expected.pop("reservoir_ids")
    assert as_json(profile.to_dict()) == expected
    assert as_json(Profile.from_bytes(profile.to_bytes()).to_dict()) == expected


def test_journaled_batches_of_today_open_as_version_2() -> None:
    data = blob("batch.iwj2")
    assert JOURNALED_BATCH.decode(data).version == 2
    batch = decode_batch(data)
    expected = EXPECTED["batch"]
    assert (list(batch.ids), batch.start_ns) == (expected["ids"], expected["start_ns"])
    assert as_json(frame_values(batch.inputs)) == expected["inputs"]
    assert as_json(frame_values(batch.outputs)) == expected["outputs"]
    assert decode_batch(encode_batch(batch)).ids == batch.ids
    bare = decode_batch(blob("bare_batch.iwj2"))
    assert (bare.ids, bare.inputs, bare.outputs) == ((), None, None)


@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("window_state.iws1", WindowState.from_bytes),
        ("window_summary.iws1", WindowSummary.from_bytes),
        ("reservoir.iwr1", Reservoir.from_bytes),
        ("profile.iwp1", Profile.from_bytes),
        ("batch.iwj2", decode_batch),
    ],
)
def test_truncated_blobs_of_today_are_container_errors(
    name: str, reader: Callable[[bytes], Any]
) -> None:
    data = blob(name)
    for end in range(len(data)):
        with pytest.raises(ContainerError):
            reader(data[:end])


def test_a_database_of_today_opens_with_its_history_and_takes_new_data(
    tmp_path: Path, make_collector: Callable[..., RunningCollector]
) -> None:
    expected = json.loads((LEGACY / "database.json").read_text())
    db = tmp_path / "today.sqlite"
    shutil.copy(LEGACY / "today.sqlite", db)
    collector = make_collector(db=f"sqlite:///{db}", models={"credit": {"window": "60s"}})
    with collector.client() as client:
        # Checkpointed states (IWS1) and the journal of a killed process (IWJ2), replayed.
        shown = [
            {key: window[key] for key in ("start", "end", "rows", "requests")}
            for window in windows(client, "credit")
        ]
        assert shown == expected["windows"]
        reference = client.get("/v1/models/credit/versions/3/reference").json()
        assert reference["rows"] == expected["reference_rows"]
        assert reference["summary"]["rows"] == expected["reference_summary_rows"]

        sender = SpanSender(collector.url)
        inputs, outputs = mixed_frames(np.random.default_rng(1), 10)
        ids = [f"new-{i}" for i in range(10)]
        sender.send("credit", "3", int((T0 + 61) * 1e9), inputs, ids, outputs)
        sender.close()
        wait_for(
            lambda: [w["rows"] for w in windows(client, "credit")] == [60, 40],
            what="the new span in the second window",
        )
    # Stopping checkpoints in the envelope; the next start reads both formats side by side.
    collector.stop()
    again = make_collector(db=f"sqlite:///{db}", models={"credit": {"window": "60s"}})
    with again.client() as client:
        assert [w["rows"] for w in windows(client, "credit")] == [60, 40]

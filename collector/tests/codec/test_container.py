"""The container envelope: distinct signatures, one length prefix, and errors that say what a blob
is (another kind, a newer version, truncated, corrupt), never a numpy or struct error."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from inferwatch.collector.codec import (
    JOURNALED_BATCH,
    KINDS,
    PROFILE,
    RESERVOIR,
    WINDOW_STATE,
    WINDOW_SUMMARY,
    ContainerError,
    ContainerKind,
)
from inferwatch.collector.ingest.journal import decode_batch, encode_batch
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.window.reservoir import Reservoir
from inferwatch.collector.window.state import WindowState
from inferwatch.collector.window.summaries import WindowSummary
from inferwatch.frame import Frame, categorical, encode_frame, numeric


def _frame(rows: int, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "blue"], size=rows).tolist()
    return Frame(rows, (numeric("x", rng.normal(size=(rows, 2))), categorical("c", colour)))


def _batch(rows: int = 6) -> PredictionBatch:
    return PredictionBatch(
        "m", "1", "regression", bytes(16), bytes(8), 0, 10, None,
        tuple(f"id{i}" for i in range(rows)), _frame(rows), None,
    )  # fmt: skip


def _blobs() -> dict[str, tuple[bytes, Callable[[bytes], Any]]]:
    """A blob of each kind, with the reader that opens it."""
    profile = Profile.fit([_frame(30), _frame(20, 1)], bins=4, reservoir=8)
    state = WindowState(summary=profile.new_window(), reservoir=Reservoir(5, seed=1))
    state.add([_batch(), _batch(3)])
    return {
        "window state": (state.to_bytes(), WindowState.from_bytes),
        "window summary": (state.summary.to_bytes(), WindowSummary.from_bytes),
        "reservoir": (state.reservoir.to_bytes(), Reservoir.from_bytes),
        "reference profile": (profile.to_bytes(), Profile.from_bytes),
        "journaled batch": (encode_batch(_batch()), decode_batch),
    }


BLOBS = _blobs()


def test_each_kind_has_its_own_signature_and_older_layouts_keep_theirs() -> None:
    current = [kind.signature for kind in KINDS]
    legacy = {(layout.signature, kind.name) for kind in KINDS for layout in kind.legacy}
    assert len(set(current)) == len(current)
    assert not set(current) & {signature for signature, _ in legacy}
    assert b"IWF1" not in current  # the SDK's frame keeps its own
    # The one signature two kinds shared before the envelope; layouts tell them apart.
    shared = [name for signature, name in legacy if signature == b"IWS1"]
    assert sorted(shared) == ["window state", "window summary"]
    for name, (blob, _) in BLOBS.items():
        (kind,) = [kind for kind in KINDS if kind.name == name]
        assert blob[:4] == kind.signature
        assert struct.unpack_from("<HH", blob, 4) == (kind.version, kind.parts)


def test_parts_round_trip_with_one_length_prefix_each() -> None:
    kind = JOURNALED_BATCH
    parts = (b"{}", b"", memoryview(b"abc"), bytearray(b"\x00" * 9), b"x" * 70_000)
    blob = kind.encode(*parts)
    assert len(blob) == 8 + sum(8 + len(part) for part in parts)
    decoded = kind.decode(blob)
    assert decoded.version == kind.version
    assert [bytes(part) for part in decoded.parts] == [bytes(part) for part in parts]
    with pytest.raises(ValueError, match="has 5 parts, got 2"):
        kind.encode(b"a", b"b")


@pytest.mark.parametrize(
    ("blob_of", "reader", "read_as"),
    [
        ("window summary", WindowState.from_bytes, "window state"),
        ("window state", WindowSummary.from_bytes, "window summary"),
        ("reservoir", Profile.from_bytes, "reference profile"),
        ("reference profile", Reservoir.from_bytes, "reservoir"),
        ("journaled batch", WindowState.from_bytes, "window state"),
        ("window state", decode_batch, "journaled batch"),
    ],
)
def test_a_blob_of_another_kind_is_named(
    blob_of: str, reader: Callable[[bytes], Any], read_as: str
) -> None:
    with pytest.raises(ContainerError) as refused:
        reader(BLOBS[blob_of][0])
    assert str(refused.value) == f"this is a {blob_of}, not a {read_as}"


def test_foreign_bytes_are_refused_with_what_they_are() -> None:
    frame = encode_frame(_frame(3))
    cases = {
        b"": "not a window state: no bytes",
        frame: r"this is a frame \(the span contract's format\), not a window state",
        b"IWzz\x01\x00\x03\x00": "signature b'IWzz' is of no inferwatch container this release",
        b"PK\x03\x04zipfile": r"not a window state \(signature IWWS\): it starts with b'PK",
    }
    for data, message in cases.items():
        with pytest.raises(ContainerError, match=message):
            WindowState.from_bytes(data)


@pytest.mark.parametrize("name", sorted(BLOBS))
def test_a_newer_version_is_refused_with_a_message(name: str) -> None:
    blob, reader = BLOBS[name]
    (kind,) = [kind for kind in KINDS if kind.name == name]
    newer = blob[:4] + struct.pack("<H", kind.version + 1) + blob[6:]
    with pytest.raises(ContainerError) as refused:
        reader(newer)
    assert str(refused.value) == (
        f"this {name} is in format version {kind.version + 1}, newer than this release of "
        f"inferwatch-collector reads (up to {kind.version}): a newer release wrote it; "
        "upgrade inferwatch-collector to read it"
    )


def test_envelope_faults_are_named() -> None:
    # A window summary of format version 2, which had one part (version 3 has ten).
    blob = struct.pack("<4sHHQ", b"IWSM", 2, 1, 7) + b"payload"
    assert WINDOW_SUMMARY.decode(blob).parts == (memoryview(b"payload"),)
    faults = {
        blob[:4] + b"\x03\x00" + blob[6:]: "1 parts where a window summary has 10",
        blob[:4] + b"\x00\x00" + blob[6:]: "corrupt window summary: format version 0",
        blob[:6] + b"\x02\x00" + blob[8:]: "2 parts where a window summary has 1",
        blob + b"!": "1 bytes after its last part",
        blob[:-1]: "truncated: part 0 claims 7 bytes, 6 remain",
        blob[:12]: "truncated before the length of part 0",
        blob[:5]: "truncated: 5 bytes, less than its header",
    }
    for data, message in faults.items():
        with pytest.raises(ContainerError, match=message):
            WINDOW_SUMMARY.decode(data)


@pytest.mark.parametrize("name", sorted(BLOBS))
def test_every_truncation_is_a_container_error(name: str) -> None:
    blob, reader = BLOBS[name]
    step = max(1, len(blob) // 400)
    for end in [*range(0, len(blob), step), len(blob) - 1]:
        with pytest.raises(ContainerError, match=f"{name}|no bytes"):
            reader(blob[:end])


@pytest.mark.parametrize("name", sorted(BLOBS))
def test_damaged_bytes_read_or_fail_as_container_errors(name: str) -> None:
    # A flipped byte may leave a readable blob (a count in JSON); it may never escape as a
    # numpy, struct, zlib or JSON error.
    blob, reader = BLOBS[name]
    rng = np.random.default_rng(3)
    for position in rng.choice(len(blob), size=min(len(blob), 300), replace=False).tolist():
        damaged = bytearray(blob)
        damaged[position] ^= 1 << int(rng.integers(8))
        with contextlib.suppress(ContainerError):
            reader(bytes(damaged))


def test_a_kind_needs_an_inferwatch_signature() -> None:
    with pytest.raises(ValueError, match="4 bytes from b'IW'"):
        ContainerKind("thing", b"XXXX", version=1, parts=1)


def test_kinds_are_the_ones_their_owners_write() -> None:
    assert {kind.name for kind in KINDS} == set(BLOBS)
    assert {WINDOW_STATE, WINDOW_SUMMARY, RESERVOIR, PROFILE, JOURNALED_BATCH} == set(KINDS)

"""The ReferenceStore contract: uploads in parts, streamed back in part order; a version's
reference, replaced by the next."""

from __future__ import annotations

from inferwatch.collector.reference.store import ReferenceRecord, UploadRecord
from inferwatch.collector.storage import Storage

from .conftest import Backend


def test_upload_parts_come_back_in_part_order(backend: Backend) -> None:
    storage = backend.open()
    upload_id = storage.references.create_upload("m", "1", "regression", now_ms=1_000)
    other = storage.references.create_upload("m", "1", None, now_ms=2_000)
    assert upload_id != other
    for part, data in ((2, b"two"), (0, b"zero"), (1, b"one, first"), (1, b"one")):
        storage.references.put_part(upload_id, part, rows=len(data), data=data)
    storage.references.put_part(other, 0, 1, b"elsewhere")
    storage = backend.reopen(storage)
    assert storage.references.upload(upload_id) == UploadRecord(
        upload_id, "m", "1", "regression", 1_000
    )
    assert list(storage.references.parts(upload_id)) == [b"zero", b"one", b"two"]

    storage.references.delete_upload(upload_id)
    assert storage.references.upload(upload_id) is None
    assert list(storage.references.parts(upload_id)) == []
    assert list(storage.references.parts(other)) == [b"elsewhere"]
    assert storage.references.upload("no-such-upload") is None


def test_a_reference_replaces_the_previous_one_of_its_version(backend: Backend) -> None:
    storage: Storage = backend.open()
    auto = ReferenceRecord("m", "1", "auto", 100, 1_000, b"\x00profile", {"features": ["a"]})
    uploaded = ReferenceRecord("m", "1", "upload", 5, 2_000, b"p2", {"features": [], "task": None})
    storage.references.put(auto)
    assert storage.references.get("m", "1") == auto
    storage.references.put(uploaded)
    storage.references.put(ReferenceRecord("m", "2", "auto", 1, 3_000, b"v2", {}))
    storage = backend.reopen(storage)
    assert storage.references.get("m", "1") == uploaded
    assert storage.references.get("m", "2") is not None
    assert storage.references.get("m", "3") is None
    assert storage.references.get("n", "1") is None

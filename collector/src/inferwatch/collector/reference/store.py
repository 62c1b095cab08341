"""What references keep in a database: uploads in parts, and each version's fitted profile.

The port that ``References`` and the upload endpoints use; ``inferwatch.collector.storage`` has
the backends. Every write method is one transaction; times are integer milliseconds since the
Unix epoch; a profile and an upload part are opaque bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    model: str
    version: str
    source: str  # "upload" or "auto"
    rows: int
    created_ms: int
    profile: bytes
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UploadRecord:
    upload_id: str
    model: str
    version: str
    task: str | None
    created_ms: int


class ReferenceStore(Protocol):
    """Uploads and references. Implementations must be thread-safe."""

    def create_upload(self, model: str, version: str, task: str | None, now_ms: int) -> str:
        """A new upload's id."""
        ...

    def upload(self, upload_id: str) -> UploadRecord | None: ...

    def put_part(self, upload_id: str, part: int, rows: int, data: bytes) -> None:
        """Store (or replace) part number ``part`` of the upload."""
        ...

    def parts(self, upload_id: str) -> Iterator[bytes]:
        """The parts' bytes in part order, one at a time (never all in memory)."""
        ...

    def delete_upload(self, upload_id: str) -> None: ...

    def put(self, reference: ReferenceRecord) -> None:
        """Make ``reference`` its version's reference, replacing any earlier one."""
        ...

    def get(self, model: str, version: str) -> ReferenceRecord | None: ...

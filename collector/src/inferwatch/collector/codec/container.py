"""The one envelope of every binary blob the collector stores, and the kinds of blob there are.

Layout, all integers little-endian::

    signature (4 bytes, one per kind) | format version (uint16) | part count (uint16)
    | each part: its length (uint64), then its bytes

Each kind (the ``ContainerKind`` constants below) has its own signature and the version it
writes; what its parts hold is up to the module that owns it (window.state, window.summaries,
window.reservoir, reference.profile, ingest.journal). Reading checks everything the envelope
promises before a part is used, and every failure is a ContainerError that says what the blob
is: another kind ("this is a window summary, not a window state"), a version newer than this
release reads, or where it is truncated or corrupt.

Releases before this envelope wrote each kind in a layout of its own (``LegacyLayout``), and
their blobs are in users' databases: they are read as the versions they are. Window states and
window summaries shared the signature ``IWS1`` then; their layouts tell them apart.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

Buffer = bytes | bytearray | memoryview
Parts = Sequence[memoryview]

_HEAD = struct.Struct("<4sHH")
_LENGTH = struct.Struct("<Q")
_SIGNATURE_SIZE = 4
# The first bytes of every inferwatch signature, this envelope's and the older layouts'.
_FAMILY = b"IW"
# What reading values of the wrong type or shape out of parsed parts raises.
_INTERPRETING_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
    struct.error,
)


class ContainerError(ValueError):
    """A blob is not the container it was read as; the message says what it is instead."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A blob's format version and its parts, as views into the blob (no copies)."""

    version: int
    parts: tuple[memoryview, ...]


def _anything(parts: Parts) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class LegacyLayout:
    """How a release before the envelope laid out a kind: ``prefixed`` parts, each after its
    length (a ``length`` struct), then, when ``rest``, everything after them as one more part.

    ``looks_right(parts)`` tells this kind's blobs from another kind's of the same signature.
    """

    signature: bytes
    version: int
    length: struct.Struct = _LENGTH
    prefixed: int = 0
    rest: bool = False
    looks_right: Callable[[Parts], bool] = field(default=_anything)

    def split(self, view: memoryview) -> tuple[memoryview, ...]:
        """The parts of a whole blob; ValueError saying where it does not fit the layout."""
        parts, offset = _prefixed(view, _SIGNATURE_SIZE, self.prefixed, self.length)
        if self.rest:
            parts.append(view[offset:])
        elif offset != len(view):
            raise ValueError(f"{len(view) - offset} bytes after its last part")
        return tuple(parts)

    def fits(self, view: memoryview) -> bool:
        try:
            return self.looks_right(self.split(view))
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class ContainerKind:
    """One kind of stored blob: its name in messages, signature, the version it writes (older
    versions stay readable) and its number of parts."""

    name: str
    signature: bytes
    version: int
    parts: int
    legacy: tuple[LegacyLayout, ...] = ()
    # (version, parts) of earlier versions of the envelope that had another number of parts.
    older_parts: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if len(self.signature) != _SIGNATURE_SIZE or not self.signature.startswith(_FAMILY):
            raise ValueError(f"a signature is 4 bytes from {_FAMILY!r}, got {self.signature!r}")
        if not 1 <= self.version <= 0xFFFF or not 0 <= self.parts <= 0xFFFF:
            raise ValueError(f"{self.name}: version or part count out of range")

    @property
    def a_name(self) -> str:
        return f"{'an' if self.name[0] in 'aeiou' else 'a'} {self.name}"

    def encode(self, *parts: Buffer) -> bytes:
        """The blob of ``parts`` (as many as the kind has) at this kind's current version."""
        if len(parts) != self.parts:
            raise ValueError(f"{self.a_name} has {self.parts} parts, got {len(parts)}")
        pieces: list[Buffer] = [_HEAD.pack(self.signature, self.version, len(parts))]
        for part in parts:
            pieces.append(_LENGTH.pack(len(part)))
            pieces.append(part)
        return b"".join(pieces)

    def decode(self, data: Buffer) -> Decoded:
        """The version and parts of a blob of this kind. Raises ContainerError saying what the
        blob is when it is another kind, newer than this release reads, truncated or corrupt."""
        view = memoryview(data)
        if view.format != "B":
            view = view.cast("B")
        if len(view) >= _HEAD.size:
            signature, version, count = _HEAD.unpack_from(view)
            if signature == self.signature:
                return self._decode_current(view, version, count)
        signature = bytes(view[:_SIGNATURE_SIZE])
        if signature == self.signature:
            raise self.corrupt(f"truncated: {len(view)} bytes, less than its header")
        for layout in self.legacy:
            if layout.signature == signature:
                return self._decode_legacy(layout, view)
        raise self._foreign(signature, view)

    def corrupt(self, why: str) -> ContainerError:
        return ContainerError(f"corrupt {self.name}: {why}")

    def reading(self) -> _Reading:
        """``with kind.reading():`` turns an error while interpreting this kind's parts (a
        missing key, a value of the wrong type) into a ContainerError naming the kind."""
        return _Reading(self)

    def _decode_current(self, view: memoryview, version: int, count: int) -> Decoded:
        if version > self.version:
            raise ContainerError(
                f"this {self.name} is in format version {version}, newer than this release of "
                f"inferwatch-collector reads (up to {self.version}): a newer release wrote it; "
                "upgrade inferwatch-collector to read it"
            )
        if version < 1:
            raise self.corrupt("format version 0")
        expected = dict(self.older_parts).get(version, self.parts)
        if count != expected:
            raise self.corrupt(f"{count} parts where {self.a_name} has {expected}")
        try:
            parts, offset = _prefixed(view, _HEAD.size, count, _LENGTH)
        except ValueError as exc:
            raise self.corrupt(str(exc)) from None
        if offset != len(view):
            raise self.corrupt(f"{len(view) - offset} bytes after its last part")
        return Decoded(version, tuple(parts))

    def _decode_legacy(self, layout: LegacyLayout, view: memoryview) -> Decoded:
        try:
            parts = layout.split(view)
        except ValueError as exc:
            problem = str(exc)
        else:
            if layout.looks_right(parts):
                return Decoded(layout.version, parts)
            problem = "its parts are not what the layout holds"
        for other in _kinds_known_by(layout.signature):
            if other is not self and other.fits(view):
                raise self._not(other)
        raise self.corrupt(
            f"{problem} (read as version {layout.version}, the "
            f"{layout.signature.decode()} layout of earlier releases)"
        )

    def fits(self, view: memoryview) -> bool:
        """Whether ``view`` is laid out as one of this kind's blobs (for telling kinds apart)."""
        signature = bytes(view[:_SIGNATURE_SIZE])
        return signature == self.signature or any(
            layout.signature == signature and layout.fits(view) for layout in self.legacy
        )

    def _foreign(self, signature: bytes, view: memoryview) -> ContainerError:
        if not view:
            return ContainerError(f"not {self.a_name}: no bytes")
        known = _kinds_known_by(signature)
        fitting = [kind for kind in known if kind.fits(view)] or known
        if len(fitting) == 1:
            return self._not(fitting[0])
        if fitting:
            names = " or ".join(kind.a_name for kind in fitting)
            return ContainerError(f"this is {names} ({signature.decode()}), not {self.a_name}")
        if signature == FRAME_SIGNATURE:
            return ContainerError(
                f"this is a frame (the span contract's format), not {self.a_name}"
            )
        expected = f"not {self.a_name} (signature {self.signature.decode()})"
        if signature.startswith(_FAMILY) and len(signature) == _SIGNATURE_SIZE:
            return ContainerError(
                f"{expected}: its signature {signature!r} is of no inferwatch container this "
                "release knows (a newer release's, or corrupt)"
            )
        return ContainerError(f"{expected}: it starts with {bytes(view[:8])!r}")

    def _not(self, other: ContainerKind) -> ContainerError:
        return ContainerError(f"this is {other.a_name}, not {self.a_name}")


class _Reading:
    # A class rather than @contextmanager: it runs once per journaled batch replayed.
    __slots__ = ("kind",)

    def __init__(self, kind: ContainerKind) -> None:
        self.kind = kind

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, _INTERPRETING_ERRORS) and not isinstance(exc, ContainerError):
            raise self.kind.corrupt(f"{type(exc).__name__}: {exc}") from None


def _prefixed(
    view: memoryview, offset: int, count: int, length: struct.Struct
) -> tuple[list[memoryview], int]:
    """``count`` parts from ``offset``, each after its length; ValueError where one is cut."""
    parts: list[memoryview] = []
    for index in range(count):
        if offset + length.size > len(view):
            raise ValueError(f"truncated before the length of part {index}")
        (size,) = length.unpack_from(view, offset)
        offset += length.size
        if size > len(view) - offset:
            raise ValueError(
                f"truncated: part {index} claims {size} bytes, {len(view) - offset} remain"
            )
        parts.append(view[offset : offset + size])
        offset += size
    return parts, offset


# What the layouts of earlier releases hold, to tell IWS1 states from IWS1 summaries.
_OLD_LENGTH = struct.Struct("<I")
_OLD_PROFILE_LENGTH = struct.Struct("<Q")


def _json_first(parts: Parts) -> bool:
    return bytes(parts[0][:1]) == b"{"


def _zlib_stream(parts: Parts) -> bool:
    # A zlib header (deflate, checksummed), and a start that inflates: a state's bytes do not.
    head = bytes(parts[0][:64])
    if len(head) < 2 or head[0] & 0x0F != 8 or (head[0] << 8 | head[1]) % 31:
        return False
    try:
        zlib.decompressobj().decompress(head)
    except zlib.error:
        return False
    return True


WINDOW_STATE = ContainerKind(
    "window state",
    b"IWWS",
    version=2,
    parts=3,  # JSON counters, the window summary's blob, the reservoir's blob
    legacy=(LegacyLayout(b"IWS1", 1, _OLD_LENGTH, prefixed=3, looks_right=_json_first),),
)
WINDOW_SUMMARY = ContainerKind(
    "window summary",
    b"IWSM",
    version=3,
    # JSON, then the numeric columns as arrays (window.summaries, WindowSummary.to_bytes)
    parts=10,
    legacy=(LegacyLayout(b"IWS1", 1, rest=True, looks_right=_zlib_stream),),
    older_parts=((2, 1),),  # version 2: zlib-compressed JSON
)
RESERVOIR = ContainerKind(
    "reservoir",
    b"IWRS",
    version=2,
    parts=2,  # JSON header (capacity, rows seen, generator, ids), the kept rows as a frame
    legacy=(LegacyLayout(b"IWR1", 1, _OLD_LENGTH, prefixed=1, rest=True),),
)
PROFILE = ContainerKind(
    "reference profile",
    b"IWRP",
    version=2,
    parts=2,  # the window summary's blob, the reservoir's blob
    legacy=(LegacyLayout(b"IWP1", 1, _OLD_PROFILE_LENGTH, prefixed=1, rest=True),),
)
JOURNALED_BATCH = ContainerKind(
    "journaled batch",
    b"IWJB",
    version=3,
    parts=5,  # JSON metadata, ids end to end, their lengths, the input and output frames
    legacy=(LegacyLayout(b"IWJ2", 2, _OLD_LENGTH, prefixed=5, looks_right=_json_first),),
)
KINDS = (WINDOW_STATE, WINDOW_SUMMARY, RESERVOIR, PROFILE, JOURNALED_BATCH)
# The SDK's frame (inferwatch.frame) keeps the span contract's own layout; it is named here so
# that a frame read as a stored blob is called what it is.
FRAME_SIGNATURE = b"IWF1"


def _kinds_known_by(signature: bytes) -> list[ContainerKind]:
    return [kind for kind in KINDS if signature in _signatures(kind)]


def _signatures(kind: ContainerKind) -> tuple[bytes, ...]:
    return (kind.signature, *(layout.signature for layout in kind.legacy))

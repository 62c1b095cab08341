"""Read a request body under a size cap, inflating gzip as it streams in.

The cap applies to the bytes on the wire and to the decompressed bytes: a gzip bomb is stopped as
soon as its output passes the cap, never inflated in full.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from starlette.requests import Request

from inferwatch.collector.receive.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

ENCODINGS = ("identity", "gzip")
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes
    wire_bytes: int


async def read_body(request: Request, *, limit: int) -> Body:
    """The body, decompressed; raises PayloadTooLarge past ``limit`` bytes, before reading on."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding not in ENCODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send one of {', '.join(ENCODINGS)}."
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, f"Content-Length is {int(declared):,} bytes")
    inflater = _GzipInflater(limit) if encoding == "gzip" else None
    chunks: list[bytes] = []
    wire = size = 0
    async for chunk in request.stream():
        wire += len(chunk)
        if wire > limit:
            raise _too_large(limit, "the body is larger")
        if inflater is not None:
            chunk = inflater.feed(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, "the decompressed body is larger")
        chunks.append(chunk)
    if inflater is not None:
        inflater.finish()
    return Body(b"".join(chunks), wire)


def _too_large(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"The limit is {limit:,} bytes a request and {what}; send fewer spans.")


class _GzipInflater:
    """Incremental gunzip that never produces more than ``limit`` bytes in total."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._produced = 0
        self._inflate = zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes) -> bytes:
        parts: list[bytes] = []
        while data:
            room = self._limit - self._produced
            try:
                # max_length = room + 1: one byte past the cap is enough to know it is exceeded.
                out = self._inflate.decompress(data, room + 1)
            except zlib.error as exc:
                raise BadRequest(f"The gzip body is corrupt ({exc}).") from None
            self._produced += len(out)
            if self._produced > self._limit:
                raise _too_large(self._limit, "the decompressed body is larger")
            parts.append(out)
            if self._inflate.eof:
                # A gzip stream may hold several members, one after another.
                data = self._inflate.unused_data
                if data:
                    self._inflate = zlib.decompressobj(_GZIP_WBITS)
            else:
                data = self._inflate.unconsumed_tail
        return b"".join(parts)

    def finish(self) -> None:
        if not self._inflate.eof:
            raise BadRequest("The gzip body ends before its gzip stream does (truncated).")

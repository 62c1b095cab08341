"""Read a request body under a size cap, inflating gzip as it streams in.

The cap applies to the bytes on the wire and to the decompressed bytes: a gzip bomb is stopped as
soon as its output passes the cap, never inflated in full. Across requests, an ``InflightBudget``
bounds the bytes of all bodies held at once: a body that would pass it is refused (503, retry
later) and the rest of it is read and dropped, never kept.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import Request

from inferwatch.collector.receive.errors import (
    BadRequest,
    Busy,
    PayloadTooLarge,
    UnsupportedMediaType,
)

ENCODINGS = ("identity", "gzip")
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes
    wire_bytes: int


# What a client refused for the in-flight budget is asked to wait: bodies in flight are being
# decoded and stored, which takes a moment.
RETRY_AFTER_BUSY_S = 1.0


class InflightBudget:
    """The bytes of request bodies (as sent, and decompressed) held at once by every request.

    One request is always let in when nothing else is held, so a body within ``max_body_bytes``
    can always succeed later, whatever this limit. Used from the event loop only.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        # The most ever held at once (a test and an operator can see the bound hold).
        self.peak = 0

    def hold(self) -> Holding:
        return Holding(self)


class Holding:
    """One request's share of the budget; ``with`` it, and all of it is given back at the end."""

    def __init__(self, budget: InflightBudget) -> None:
        self._budget = budget
        self.bytes = 0

    def cover(self, size: int) -> None:
        """Hold at least ``size`` bytes in all; Busy if the budget has not that much left."""
        budget = self._budget
        size -= self.bytes
        if size <= 0:
            return
        # Bytes of other requests: one request alone is always let through.
        if budget.held > self.bytes and budget.held + size > budget.limit:
            raise Busy(
                f"The collector holds {budget.held:,} bytes of request bodies and its limit "
                f"(max_inflight_bytes) is {budget.limit:,}; retry shortly.",
                RETRY_AFTER_BUSY_S,
            )
        budget.held += size
        budget.peak = max(budget.peak, budget.held)
        self.bytes += size

    def __enter__(self) -> Holding:
        return self

    def __exit__(self, *exc: object) -> None:
        self._budget.held -= self.bytes
        self.bytes = 0


async def read_body(request: Request, *, limit: int, holding: Holding | None = None) -> Body:
    """The body, decompressed; raises PayloadTooLarge past ``limit`` bytes, before reading on.

    With a ``holding``, every byte kept (as sent, and decompressed) is taken from its budget
    first; when the budget is spent, Busy is raised once the rest of the body has been read and
    dropped (so that the client, still sending, reads the answer).
    """
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
    stream = request.stream()
    try:
        if holding is not None and declared.isdigit():
            holding.cover(int(declared))
        async for chunk in stream:
            wire += len(chunk)
            if wire > limit:
                raise _too_large(limit, "the body is larger")
            if inflater is not None:
                chunk = inflater.feed(chunk)
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, "the decompressed body is larger")
            if holding is not None:
                # What is kept: the body as sent, or its inflated bytes (a gzip chunk is not).
                holding.cover(size)
            chunks.append(chunk)
    except Busy:
        chunks.clear()
        await _drain(stream, limit - wire)
        raise
    if inflater is not None:
        inflater.finish()
    return Body(b"".join(chunks), wire)


async def _drain(stream: AsyncIterator[bytes], limit: int) -> None:
    """Read the rest of a refused body, keeping none of it, up to ``limit`` bytes."""
    async for chunk in stream:
        limit -= len(chunk)
        if limit < 0:
            return


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

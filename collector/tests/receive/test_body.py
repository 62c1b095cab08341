"""read_body: the size cap and gzip inflation, on real Starlette requests."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Sequence

import pytest
from starlette.requests import Request
from starlette.types import Message

from inferwatch.collector.receive.body import read_body
from inferwatch.collector.receive.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


def request(chunks: Sequence[bytes], headers: dict[str, str]) -> Request:
    pending = list(chunks)

    async def receive() -> Message:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/traces",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


async def test_plain_body_is_returned_whole():
    body = await read_body(request(split(b"x" * 100_000, 4096), {}), limit=1 << 20)
    assert body.data == b"x" * 100_000 and body.wire_bytes == 100_000


async def test_gzip_members_are_inflated_one_after_another():
    data = gzip.compress(b"first|") + gzip.compress(b"second")
    body = await read_body(request(split(data, 7), {"Content-Encoding": "gzip"}), limit=1 << 20)
    assert body.data == b"first|second" and body.wire_bytes == len(data)


async def test_a_gzip_bomb_is_stopped_without_inflating_it():
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    bomb = b"".join(deflate.compress(zeros) for _ in range(64)) + deflate.flush()
    limit = 1 << 20

    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="1,048,576 bytes"):
            await read_body(request(split(bomb, 65536), {"Content-Encoding": "gzip"}), limit=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Inflating it fully would take 64 MiB; stopping at the cap keeps it near the cap.
    assert peak < 4 * limit


async def test_declared_length_over_the_limit_is_refused_before_reading():
    chunks = [b"x" * 10]
    with pytest.raises(PayloadTooLarge, match="Content-Length is 5,000 bytes"):
        await read_body(request(chunks, {"Content-Length": "5000"}), limit=1000)
    assert chunks == [b"x" * 10]  # nothing was read


async def test_undeclared_body_over_the_limit_is_refused_while_reading():
    with pytest.raises(PayloadTooLarge, match="the body is larger"):
        await read_body(request(split(b"x" * 5000, 100), {}), limit=1000)


async def test_corrupt_and_truncated_gzip_are_bad_requests():
    data = gzip.compress(b"hello world" * 100)
    with pytest.raises(BadRequest, match="truncated"):
        await read_body(request([data[:-12]], {"Content-Encoding": "gzip"}), limit=1 << 20)
    with pytest.raises(BadRequest, match="corrupt"):
        await read_body(request([b"not gzip at all"], {"Content-Encoding": "gzip"}), limit=1000)


async def test_unknown_content_encoding_is_unsupported():
    with pytest.raises(UnsupportedMediaType, match="'zstd'"):
        await read_body(request([b"x"], {"Content-Encoding": "zstd"}), limit=1000)

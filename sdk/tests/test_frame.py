"""The frame is the span contract's wire format: its bytes never change, and bytes that are not
a frame are refused with a FrameError saying what they are (never a numpy or JSON error)."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest

from inferwatch.frame import (
    Frame,
    FrameError,
    FrameLimits,
    categorical,
    decode_frame,
    encode_frame,
    numeric,
)

# encode_frame(SAMPLE) as SDKs already deployed send it (docs/span-contract.md).
DEPLOYED = bytes.fromhex(
    "49574631300100007b22726f7773223a332c22636f6c756d6e73223a5b7b226b696e64223a226e756d65726963"
    "222c226e616d65223a226665617475726573222c226474797065223a223c6638222c227769647468223a322c22"
    "6e616d6573223a5b2261222c2262225d7d2c7b226b696e64223a226e756d65726963222c226e616d65223a2265"
    "6d62222c226474797065223a223c6634222c227769647468223a337d2c7b226b696e64223a2263617465676f72"
    "6963616c222c226e616d65223a22636f6c6f7572222c2263617465676f72696573223a5b22726564222c22626c"
    "7565225d7d2c7b226b696e64223a226e756d65726963222c226e616d65223a2270726564696374696f6e222c22"
    "6474797065223a223c6638222c227769647468223a312c22726f6c65223a226f7574707574227d5d7d20000000"
    "000000f83f000000000000f87f000000000000000000000000000002c000000000000008400000000000001040"
    "0000803f00000040000040400000803f00000040000040400000803f00000040000040400000000000000000ff"
    "ffffff01000000000000009a9999999999b93f9a9999999999c93f333333333333d33f"
)
SAMPLE = Frame(
    3,
    (
        numeric("features", np.array([[1.5, np.nan], [0.0, -2.25], [3.0, 4.0]]), names=["a", "b"]),
        numeric("emb", np.array([[1, 2, 3]] * 3, dtype=np.float32)),
        categorical("colour", ["red", None, "blue"]),
        numeric("prediction", [0.1, 0.2, 0.3], role="output"),
    ),
)


def test_the_bytes_of_a_frame_are_those_deployed_sdks_send() -> None:
    assert encode_frame(SAMPLE) == DEPLOYED
    assert encode_frame(decode_frame(DEPLOYED)) == DEPLOYED


def test_bytes_that_are_not_a_frame_say_what_they_are() -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    cases = {
        b"": "no bytes",
        b"PK\x03\x04zip": "it starts with b'PK.*', not b'IWF1'",
        b"IWF2" + bytes(12): "format version 2 .* reads version 1 .*: upgrade inferwatch",
        b"IWWS\x02\x00\x03\x00": "b'IWWS' is another inferwatch container's signature",
        b"IWF1\x10": "truncated frame: 5 bytes, less than its 8-byte start",
        b"IWF1" + struct.pack("<I", len(nested)) + nested: "nests too deeply",
    }
    for data, message in cases.items():
        with pytest.raises(FrameError, match=message):
            decode_frame(data)


def _error_of(data: bytes, limits: FrameLimits) -> str:
    with pytest.raises(FrameError) as raised:
        decode_frame(data, limits=limits)
    return str(raised.value)


def test_a_header_seen_before_still_has_its_data_checked() -> None:
    # decode_frame keeps the layout of headers it found valid: the data behind a known header
    # must be refused as a fresh decode would refuse it, message for message.
    header_end = 8 + struct.unpack_from("<I", DEPLOYED, 4)[0]
    codes = DEPLOYED.index(bytes.fromhex("00000000ffffffff01000000"))
    bad_code = DEPLOYED[:codes] + struct.pack("<i", 7) + DEPLOYED[codes + 4 :]
    damaged = [DEPLOYED[:end] for end in range(header_end, len(DEPLOYED))]
    damaged += [DEPLOYED + bytes(8), bad_code]
    for number, data in enumerate(damaged):
        # A limits object of its own: its first decode is a fresh one.
        limits = FrameLimits(text_chars=1000 + number)
        fresh = _error_of(data, limits)
        decoded = decode_frame(DEPLOYED, limits=limits)
        assert encode_frame(decoded) == DEPLOYED
        assert _error_of(data, limits) == fresh
        assert encode_frame(decode_frame(DEPLOYED, limits=limits)) == DEPLOYED


def test_every_truncation_and_damage_is_a_frame_error() -> None:
    for end in range(len(DEPLOYED)):
        with pytest.raises(FrameError):
            decode_frame(DEPLOYED[:end])
    rng = np.random.default_rng(0)
    for position in range(len(DEPLOYED)):
        damaged = bytearray(DEPLOYED)
        damaged[position] ^= 1 << int(rng.integers(8))
        with contextlib.suppress(FrameError):
            decode_frame(bytes(damaged))

"""What the commands share: arguments that reach the collector, errors, a progress bar."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO


def fail(message: str, code: int = 1) -> int:
    print(f"inferwatch: error: {message}", file=sys.stderr)
    return code


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint", help="the collector's URL (default $INFERWATCH_ENDPOINT or 127.0.0.1:4318)"
    )
    parser.add_argument("--api-key", help="bearer token (default $INFERWATCH_API_KEY)")


class ProgressBar:
    """``progress(rows_sent, total_rows)`` drawn on one line of a stream with carriage returns."""

    def __init__(self, stream: TextIO, label: str = "uploading", width: int = 30) -> None:
        self._stream = stream
        self._label = label
        self._width = width
        self._drawn = False

    def __call__(self, sent: int, total: int) -> None:
        fraction = sent / total if total else 1.0
        filled = round(self._width * fraction)
        bar = "#" * filled + " " * (self._width - filled)
        self._stream.write(f"\r{self._label} [{bar}] {sent:,}/{total:,} rows {fraction:4.0%}")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

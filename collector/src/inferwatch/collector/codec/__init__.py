"""How the collector's values are written down: strict-JSON values (``jsonsafe``) and the
versioned binary containers it stores (``container``)."""

from inferwatch.collector.codec.container import (
    JOURNALED_BATCH,
    KINDS,
    PROFILE,
    RESERVOIR,
    WINDOW_STATE,
    WINDOW_SUMMARY,
    ContainerError,
    ContainerKind,
    Decoded,
    LegacyLayout,
)
from inferwatch.collector.codec.jsonsafe import finite, json_safe, printable

__all__ = [
    "JOURNALED_BATCH",
    "KINDS",
    "PROFILE",
    "RESERVOIR",
    "WINDOW_STATE",
    "WINDOW_SUMMARY",
    "ContainerError",
    "ContainerKind",
    "Decoded",
    "LegacyLayout",
    "finite",
    "json_safe",
    "printable",
]
